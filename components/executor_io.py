"""What the components' TFX executors take in ``Do`` and how they fail an execution.

A ``Do`` gets its input and output artifacts by channel key and its execution properties by
name. To stop a run on bad data it returns a failed ``ExecutorOutput``: the execution is
FAILED in MLMD with the message attached, and nothing downstream of it runs.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeAlias

from tfx import types
from tfx.dsl.components.base import base_beam_executor, base_executor
from tfx.proto.orchestration import execution_result_pb2
from tfx.types import artifact_utils

FAILED_PRECONDITION = 9  # google.rpc.Code: the data, not the system, is at fault

Artifacts: TypeAlias = dict[str, list[types.Artifact]]
"""``Do``'s ``input_dict`` and ``output_dict``: the artifacts of each channel, by key."""

ExecProperties: TypeAlias = dict[str, Any]
"""``Do``'s ``exec_properties``: the component's parameters, by name."""


def failed_execution(message: str) -> execution_result_pb2.ExecutorOutput:
    """What ``Do`` returns to fail its execution with ``message`` (MLMD keeps it)."""
    return execution_result_pb2.ExecutorOutput(
        execution_result=execution_result_pb2.ExecutionResult(
            code=FAILED_PRECONDITION, result_message=message
        )
    )


@dataclasses.dataclass(frozen=True)
class Execution:
    """One execution of a component: what ``Do`` is handed, read by channel key or name."""

    inputs: Artifacts
    outputs: Artifacts
    properties: ExecProperties

    def input(self, key: str) -> types.Artifact:
        """The one artifact of input channel ``key``."""
        return artifact_utils.get_single_instance(self.inputs[key])

    def optional_input(self, key: str) -> types.Artifact | None:
        """The first artifact of an optional input channel, None when it is not wired."""
        artifacts = self.inputs.get(key) or []
        return artifacts[0] if artifacts else None

    def output(self, key: str) -> types.Artifact:
        """The one artifact of output channel ``key``."""
        return artifact_utils.get_single_instance(self.outputs[key])


class ComponentExecutor(base_executor.BaseExecutor):
    """A TFX executor whose work is ``execute``: TFX calls ``Do``, which hands it the
    execution; ``execute`` returns None, or ``failed_execution(...)`` to fail it."""

    def Do(
        self,
        input_dict: Artifacts,
        output_dict: Artifacts,
        exec_properties: ExecProperties,
    ) -> execution_result_pb2.ExecutorOutput | None:
        return self.execute(Execution(input_dict, output_dict, exec_properties))

    def execute(self, execution: Execution) -> execution_result_pb2.ExecutorOutput | None:
        raise NotImplementedError


class ComponentBeamExecutor(ComponentExecutor, base_beam_executor.BaseBeamExecutor):
    """A ``ComponentExecutor`` whose work is a Beam pipeline: ``self._make_beam_pipeline()``
    makes one with the pipeline's ``beam_args`` (the component's executor spec must be a
    ``BeamExecutorSpec``)."""
