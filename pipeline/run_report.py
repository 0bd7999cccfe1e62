"""Read back what a pipeline run did from MLMD: per-component state and wall time, the
failure reason, the drift report, the evaluation and the pushed model.

Used by the CLI summary, the e2e test and ``benchmarks/pipeline_time.py``.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

RUN_CONTEXT_TYPE = "pipeline_run"
NODE_CONTEXT_TYPE = "node"
EXECUTION_RESULT_PROPERTY = "__execution_result__"
RESULT_MESSAGE = "resultMessage"  # in the JSON of EXECUTION_RESULT_PROPERTY
_STATES = metadata_store_pb2.Execution.State
COMPLETE = _STATES.Name(_STATES.COMPLETE)
CACHED = _STATES.Name(_STATES.CACHED)
FAILED = _STATES.Name(_STATES.FAILED)
DONE_STATES = (COMPLETE, CACHED)
"""The states of an execution whose outputs exist."""
# The custom properties TFX's Pusher sets on its PushedModel output.
PUSHED_PROPERTY = "pushed"
PUSHED_DESTINATION_PROPERTY = "pushed_destination"


@dataclasses.dataclass(frozen=True)
class ComponentRun:
    """One component's execution in a run."""

    component: str
    state: str  # COMPLETE | CACHED | FAILED | RUNNING | ...
    seconds: float
    execution_id: int
    message: str = ""


def connect(metadata_path: str | pathlib.Path) -> metadata_store.MetadataStore:
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(metadata_path)
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return metadata_store.MetadataStore(config)


def latest_run_id(store: metadata_store.MetadataStore, pipeline_name: str) -> str | None:
    runs = [
        c
        for c in store.get_contexts_by_type(RUN_CONTEXT_TYPE)
        if _pipeline_of_run(store, c) in (pipeline_name, None)
    ]
    if not runs:
        return None
    return max(runs, key=lambda c: (c.create_time_since_epoch, c.id)).name


def _pipeline_of_run(store, run_context) -> str | None:
    parents = store.get_parent_contexts_by_context(run_context.id)
    for parent in parents:
        return parent.name
    return None


def _node_names(store: metadata_store.MetadataStore, pipeline_name: str) -> dict[int, str]:
    """execution id -> component id, from the node contexts (``<pipeline>.<component>``)."""
    names = {}
    prefix = f"{pipeline_name}."
    for ctx in store.get_contexts_by_type(NODE_CONTEXT_TYPE):
        if not ctx.name.startswith(prefix):
            continue
        for execution in store.get_executions_by_context(ctx.id):
            names[execution.id] = ctx.name[len(prefix) :]
    return names


def _message(execution: metadata_store_pb2.Execution) -> str:
    value = execution.custom_properties.get(EXECUTION_RESULT_PROPERTY)
    if value is None or not value.string_value:
        return ""
    try:
        return json.loads(value.string_value).get(RESULT_MESSAGE, "")
    except json.JSONDecodeError:
        return value.string_value


def component_runs(
    store: metadata_store.MetadataStore, pipeline_name: str, run_id: str
) -> list[ComponentRun]:
    """The executions of ``run_id``, oldest first."""
    run = store.get_context_by_type_and_name(RUN_CONTEXT_TYPE, run_id)
    if run is None:
        return []
    names = _node_names(store, pipeline_name)
    out = []
    for execution in sorted(store.get_executions_by_context(run.id), key=lambda e: e.id):
        seconds = (
            execution.last_update_time_since_epoch - execution.create_time_since_epoch
        ) / 1000.0
        out.append(
            ComponentRun(
                component=names.get(execution.id, execution.type),
                state=_STATES.Name(execution.last_known_state),
                seconds=max(seconds, 0.0),
                execution_id=execution.id,
                message=_message(execution),
            )
        )
    return out


def _output_key(event: metadata_store_pb2.Event) -> str | None:
    """The output key an event records (TFX writes it as the path's first step)."""
    steps = event.path.steps
    return steps[0].key if steps and steps[0].HasField("key") else None


def output_artifacts(
    store: metadata_store.MetadataStore, execution_id: int, key: str | None = None
) -> list[metadata_store_pb2.Artifact]:
    """The execution's output artifacts, or those of its output ``key`` only."""
    events = store.get_events_by_execution_ids([execution_id])
    ids = [
        e.artifact_id
        for e in events
        if e.type == metadata_store_pb2.Event.OUTPUT and (key is None or _output_key(e) == key)
    ]
    return store.get_artifacts_by_id(ids) if ids else []


def artifact_uri(store, runs: list[ComponentRun], component: str, key: str) -> str | None:
    """The uri of ``component``'s output ``key`` in ``runs`` (None if it did not run)."""
    for run in runs:
        if run.component == component and run.state in DONE_STATES:
            artifacts = output_artifacts(store, run.execution_id, key)
            if artifacts:
                return artifacts[0].uri
    return None


def pushed_model(store, runs: list[ComponentRun], pusher: str) -> str | None:
    """Where the Pusher of this run pushed the model, or None when it did not push."""
    for run in runs:
        if run.component != pusher or run.state not in DONE_STATES:
            continue
        for artifact in output_artifacts(store, run.execution_id):
            props = artifact.custom_properties
            pushed = props.get(PUSHED_PROPERTY)
            if pushed and pushed.int_value == 1:
                return props[PUSHED_DESTINATION_PROPERTY].string_value
    return None


def format_timings(runs: list[ComponentRun]) -> str:
    """A table of component, state and wall time, with the total."""
    lines = [f"{'component':<32} {'state':<9} {'seconds':>9}"]
    for run in runs:
        lines.append(f"{run.component:<32} {run.state:<9} {run.seconds:>9.1f}")
    lines.append(f"{'total':<32} {'':<9} {sum(r.seconds for r in runs):>9.1f}")
    return "\n".join(lines)
