"""Run the pipeline on this machine: LocalDagRunner, MLMD in SQLite, Beam DirectRunner.

Prints a line when each component starts and ends (cached or run, with its wall time) and
returns a summary read back from MLMD. A failed component raises ``PipelineRunFailed``
naming the component and its reason.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable

import absl.logging
from tfx import v1 as tfx
from tfx.types import standard_component_specs as tfx_keys

from aiqleads.errors import AiqleadsError
from components.drift_check import spec as drift_spec
from pipeline import pipeline as wiring
from pipeline import run_report
from pipeline.config import PipelineConfig


class PipelineRunFailed(AiqleadsError):
    """A component failed; the message names it and says why."""


@dataclasses.dataclass(frozen=True)
class RunSummary:
    run_id: str | None
    runs: list[run_report.ComponentRun]
    drift_report_uri: str | None
    evaluation_uri: str | None
    blessing_uri: str | None
    pushed_to: str | None
    seconds: float


class _ProgressHandler(logging.Handler):
    """Turns the runner's "Component X is running/finished" log lines into progress lines."""

    def __init__(self, total: int, say: Callable[[str], None]) -> None:
        super().__init__(level=logging.INFO)
        self._total, self._say = total, say
        self._started: dict[str, float] = {}
        self._cached: set[str] = set()
        self._current: str | None = None
        self._done = 0

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.msg if isinstance(record.msg, str) else ""
        if msg == "Component %s is running." and record.args:
            self._current = str(record.args[0])
            self._started[self._current] = time.perf_counter()
            self._say(f"[{self._done + 1}/{self._total}] {self._current} ...")
        elif msg.startswith("A cached execution") and self._current:
            self._cached.add(self._current)
        elif msg == "Component %s is finished." and record.args:
            node = str(record.args[0])
            self._done += 1
            took = time.perf_counter() - self._started.get(node, time.perf_counter())
            how = "cached" if node in self._cached else "done"
            self._say(f"[{self._done}/{self._total}] {node} {how} in {took:.1f}s")


def one_line(text: str) -> str:
    """The telling line of an error message: its first line, unless that only introduces a
    traceback-like body (ends with ':'); then the last plain line of the body."""
    lines = [line.rstrip() for line in (text or "").strip().splitlines() if line.strip()]
    if not lines:
        return ""
    if not lines[0].endswith(":") or len(lines) == 1:
        return lines[0]
    plain = [line for line in lines[1:] if not line[0].isspace() and not line.startswith("[")]
    return f"{lines[0]} {plain[-1]}" if plain else lines[0]


def run(
    config: PipelineConfig,
    stage: str = "push",
    say: Callable[[str], None] = print,
) -> RunSummary:
    """Build and run the pipeline for ``config``; return what happened."""
    config.metadata_path.parent.mkdir(parents=True, exist_ok=True)
    config.pipeline_root.mkdir(parents=True, exist_ok=True)
    metadata = tfx.orchestration.metadata.sqlite_metadata_connection_config(
        str(config.metadata_path)
    )
    pipeline = wiring.create_pipeline(config, metadata_connection_config=metadata, stage=stage)
    handler = _ProgressHandler(len(pipeline.components), say)
    absl_logger = logging.getLogger("absl")
    warnings_to_stderr = logging.StreamHandler()
    warnings_to_stderr.setLevel(logging.WARNING)
    saved = (absl.logging.get_verbosity(), absl_logger.propagate)
    absl_logger.addHandler(handler)
    absl_logger.addHandler(warnings_to_stderr)
    # Through absl's verbosity, not the logger's level: TensorFlow's SavedModel writer
    # silences absl while it saves and then restores absl's verbosity, which would
    # otherwise end the progress lines at the Transform.
    absl.logging.set_verbosity(absl.logging.INFO)
    absl_logger.propagate = False  # the runner's INFO chatter becomes progress lines
    started = time.perf_counter()
    error: Exception | None = None
    try:
        tfx.orchestration.LocalDagRunner().run(pipeline)
    except Exception as e:  # noqa: BLE001 - any component failure: report it from MLMD
        error = e
    finally:
        absl_logger.removeHandler(handler)
        absl_logger.removeHandler(warnings_to_stderr)
        absl.logging.set_verbosity(saved[0])
        absl_logger.propagate = saved[1]
    summary = summarize(config, time.perf_counter() - started)
    if error is not None:
        failed = [r for r in summary.runs if r.state == run_report.FAILED]
        if failed:
            reason = (
                one_line(failed[-1].message) or f"{type(error).__name__}: {one_line(str(error))}"
            )
            raise PipelineRunFailed(f"{failed[-1].component} failed: {reason}") from error
        raise PipelineRunFailed(f"pipeline run failed: {type(error).__name__}: {error}") from error
    return summary


def summarize(config: PipelineConfig, seconds: float) -> RunSummary:
    """What the latest run of ``config``'s pipeline did, from MLMD."""
    store = run_report.connect(config.metadata_path)
    run_id = run_report.latest_run_id(store, config.name)
    runs = run_report.component_runs(store, config.name, run_id) if run_id else []
    return RunSummary(
        run_id=run_id,
        runs=runs,
        drift_report_uri=run_report.artifact_uri(
            store, runs, wiring.DRIFT_CHECK, drift_spec.REPORT_KEY
        ),
        evaluation_uri=_evaluator_output_uri(store, runs, tfx_keys.EVALUATION_KEY),
        blessing_uri=_evaluator_output_uri(store, runs, tfx_keys.BLESSING_KEY),
        pushed_to=run_report.pushed_model(store, runs, wiring.PUSHER),
        seconds=seconds,
    )


def _evaluator_artifacts(store, runs):
    for r in runs:
        if r.component == wiring.EVALUATOR and r.state in run_report.DONE_STATES:
            return run_report.output_artifacts(store, r.execution_id)
    return []


def _evaluator_output_uri(store, runs, key: str) -> str | None:
    """The uri of the Evaluator's output ``key`` (``<root>/Evaluator/<key>/<id>``)."""
    for artifact in _evaluator_artifacts(store, runs):
        if artifact.uri.rstrip("/").split("/")[-2] == key:
            return artifact.uri
    return None
