"""One pipeline run's artifacts, found in MLMD: what the report reads and where it lives.

Everything the report shows comes from these: the examples, statistics, anomalies and
schema of the run, its drift report (also when the check stopped the run), the Transform
graph, the candidate model and the blessed baseline the Evaluator compared it with, the
evaluation, the push, and each component's state and wall time.
"""

from __future__ import annotations

import dataclasses
import pathlib

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx.components.evaluator import constants as evaluator_constants
from tfx.types import standard_component_specs as tfx_keys
from tfx.utils import path_utils

from aiqleads.errors import DataError
from components.drift_check import spec as drift_spec
from pipeline import pipeline as wiring
from pipeline import run_report

LATEST = "latest"
REJECTED_PREFIX = "rejected-"  # the drift check keeps a stopped run's report beside its output


class RunNotFound(DataError):
    """No such run in the pipeline's MLMD."""


@dataclasses.dataclass(frozen=True)
class RunArtifacts:
    """Where one run's artifacts are (None: that step did not run or left nothing)."""

    pipeline: str
    run_id: str
    runs: tuple[run_report.ComponentRun, ...]
    schema: str | None
    examples: str | None
    statistics: str | None
    anomalies: str | None
    drift_report: str | None
    transform_graph: str | None
    model: str | None
    baseline_model: str | None
    evaluation: str | None
    blessed: bool | None
    pushed_to: str | None
    example_gen_properties: dict[str, str]

    @property
    def candidate_saved_model(self) -> str | None:
        return None if self.model is None else path_utils.serving_model_dir(self.model)

    @property
    def baseline_saved_model(self) -> str | None:
        if self.baseline_model is None:
            return None
        return path_utils.serving_model_dir(self.baseline_model)

    def state(self, component: str) -> str | None:
        for run in self.runs:
            if run.component == component:
                return run.state
        return None


def _key(event: metadata_store_pb2.Event) -> str:
    return next((step.key for step in event.path.steps if step.HasField("key")), "")


def _artifacts_by_key(
    store: metadata_store.MetadataStore, execution_id: int, event_type: int
) -> dict[str, list[metadata_store_pb2.Artifact]]:
    events = [e for e in store.get_events_by_execution_ids([execution_id]) if e.type == event_type]
    artifacts = {a.id: a for a in store.get_artifacts_by_id([e.artifact_id for e in events])}
    out: dict[str, list[metadata_store_pb2.Artifact]] = {}
    for event in events:
        if event.artifact_id in artifacts:
            out.setdefault(_key(event), []).append(artifacts[event.artifact_id])
    return out


def _property_text(value: metadata_store_pb2.Value) -> str:
    kind = value.WhichOneof("value")
    return "" if kind is None else str(getattr(value, kind))


class _Run:
    """A run's executions by component, with their input and output artifacts by key."""

    def __init__(self, store: metadata_store.MetadataStore, runs: list[run_report.ComponentRun]):
        self._store = store
        self.runs = runs
        self._by_component = {r.component: r for r in runs}

    def _done(self, component: str) -> run_report.ComponentRun | None:
        run = self._by_component.get(component)
        return run if run is not None and run.state in run_report.DONE_STATES else None

    def output(self, component: str, key: str) -> metadata_store_pb2.Artifact | None:
        run = self._done(component)
        if run is None:
            return None
        found = _artifacts_by_key(self._store, run.execution_id, metadata_store_pb2.Event.OUTPUT)
        return next(iter(found.get(key, [])), None)

    def input(self, component: str, key: str) -> metadata_store_pb2.Artifact | None:
        run = self._by_component.get(component)
        if run is None:
            return None
        found = _artifacts_by_key(self._store, run.execution_id, metadata_store_pb2.Event.INPUT)
        return next(iter(found.get(key, [])), None)

    def uri(self, component: str, key: str) -> str | None:
        artifact = self.output(component, key)
        return None if artifact is None else artifact.uri

    def execution_properties(self, component: str) -> dict[str, str]:
        run = self._by_component.get(component)
        if run is None:
            return {}
        execution = self._store.get_executions_by_id([run.execution_id])[0]
        return {k: _property_text(v) for k, v in execution.custom_properties.items()}


def _drift_report_uri(run: _Run, pipeline_root: pathlib.Path | None) -> str | None:
    """The drift check's report folder; for a stopped run, the copy kept beside the output."""
    uri = run.uri(wiring.DRIFT_CHECK, drift_spec.REPORT_KEY)
    if uri is not None:
        return uri
    failed = next((r for r in run.runs if r.component == wiring.DRIFT_CHECK), None)
    if failed is None or pipeline_root is None:
        return None
    kept = pipeline_root / wiring.DRIFT_CHECK / drift_spec.REPORT_KEY
    kept = kept / f"{REJECTED_PREFIX}{failed.execution_id}"
    return str(kept) if (kept / drift_spec.REPORT_JSON).is_file() else None


def resolve_run_id(store: metadata_store.MetadataStore, pipeline: str, run: str) -> str:
    """``run`` as a run id: ``latest`` is the newest run of ``pipeline``."""
    if run == LATEST:
        found = run_report.latest_run_id(store, pipeline)
        if found is None:
            raise RunNotFound(f"pipeline {pipeline} has no run in MLMD yet")
        return found
    if store.get_context_by_type_and_name(run_report.RUN_CONTEXT_TYPE, run) is None:
        raise RunNotFound(f"no run {run!r} of pipeline {pipeline} in MLMD")
    return run


def find(
    metadata_path: str | pathlib.Path,
    pipeline: str,
    run: str = LATEST,
    pipeline_root: pathlib.Path | None = None,
) -> RunArtifacts:
    """The artifacts of ``run`` (an id, or ``latest``) of ``pipeline`` in the MLMD at
    ``metadata_path``; ``pipeline_root`` finds a stopped drift check's report."""
    if not pathlib.Path(metadata_path).is_file():
        raise RunNotFound(f"no MLMD at {metadata_path}: run the pipeline first")
    store = run_report.connect(metadata_path)
    run_id = resolve_run_id(store, pipeline, run)
    runs = run_report.component_runs(store, pipeline, run_id)
    found = _Run(store, runs)
    blessing = found.output(wiring.EVALUATOR, tfx_keys.BLESSING_KEY)
    blessed_key = evaluator_constants.ARTIFACT_PROPERTY_BLESSED_KEY
    blessed = None
    if blessing is not None and blessed_key in blessing.custom_properties:
        blessed = bool(blessing.custom_properties[blessed_key].int_value)
    baseline = found.input(wiring.EVALUATOR, tfx_keys.BASELINE_MODEL_KEY)
    return RunArtifacts(
        pipeline=pipeline,
        run_id=run_id,
        runs=tuple(runs),
        schema=found.uri(wiring.SCHEMA_GEN, tfx_keys.SCHEMA_KEY),
        examples=found.uri(wiring.EXAMPLE_GEN, tfx_keys.EXAMPLES_KEY),
        statistics=found.uri(wiring.STATISTICS_GEN, tfx_keys.STATISTICS_KEY),
        anomalies=found.uri(wiring.EXAMPLE_VALIDATOR, tfx_keys.ANOMALIES_KEY),
        drift_report=_drift_report_uri(found, pipeline_root),
        transform_graph=found.uri(wiring.TRANSFORM, tfx_keys.TRANSFORM_GRAPH_KEY),
        model=found.uri(wiring.TRAINER, tfx_keys.MODEL_KEY),
        baseline_model=None if baseline is None else baseline.uri,
        evaluation=found.uri(wiring.EVALUATOR, tfx_keys.EVALUATION_KEY),
        blessed=blessed,
        pushed_to=run_report.pushed_model(store, runs, wiring.PUSHER),
        example_gen_properties=found.execution_properties(wiring.EXAMPLE_GEN),
    )
