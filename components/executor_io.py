"""What the components' TFX executors take in ``Do`` and how they fail an execution.

A ``Do`` gets its input and output artifacts by channel key and its execution properties by
name. To stop a run on bad data it returns a failed ``ExecutorOutput``: the execution is
FAILED in MLMD with the message attached, and nothing downstream of it runs.
"""

from __future__ import annotations

from typing import Any, TypeAlias

from tfx import types
from tfx.proto.orchestration import execution_result_pb2

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
