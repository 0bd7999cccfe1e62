"""Executor of the drift check: a thin ``Do()`` over ``run_check()``, whose statistics are
a Beam pipeline (`beam_stats`) on the runner of the pipeline's ``beam_args``.

On a violation ``Do`` returns a failed ``ExecutorOutput`` whose message is the report, so
the execution is FAILED in MLMD with the reason attached and nothing downstream runs. TFX
removes a failed execution's output folder, so the report is also kept beside it in
``rejected-<id>/``.
"""

from __future__ import annotations

import html
import json
import os
import tempfile

import apache_beam as beam
import tensorflow as tf
import tensorflow_data_validation as tfdv
from tfx import types
from tfx.proto.orchestration import execution_result_pb2
from tfx.types import standard_artifact_utils
from tfx.utils import io_utils

from components import kfp_visuals
from components.drift_check import beam_stats, drift, example_io
from components.drift_check import spec as s
from components.executor_io import ComponentBeamExecutor, Execution, failed_execution

TRAIN_SPLIT = "train"


def thresholds_from_json(text: str) -> drift.Thresholds:
    raw = json.loads(text)
    shift = raw.get("regional_median_shift")
    return drift.Thresholds(
        numeric={k: float(v) for k, v in raw.get("numeric", {}).items()},
        categorical={k: float(v) for k, v in raw.get("categorical", {}).items()},
        regional_median_shift=None if shift is None else float(shift),
        population=tuple(raw.get("population", ())),
    )


STATISTICS_DIR = "statistics"  # in the report artifact: what the check compared


def run_check(
    examples_uri: str,
    splits: list[str],
    schema_path: str,
    thresholds: drift.Thresholds,
    serving_log_dir: str | None,
    max_serving_records: int,
    trigger_reason: str = "",
    reference_dir: str | None = None,
    pipeline: beam.Pipeline | None = None,
) -> drift.DriftReport:
    """Compute the window's statistics on Beam, read the serving logs; compare; report.

    Only positives (real events) are compared: sampled negatives follow the sampler, not
    the users. Skew compares the training split's positives with the serving logs. With
    ``reference_dir`` (the report artifact), the statistics are kept in its
    ``statistics/`` folder and the training positives' statistics for the online monitor
    go there too. ``pipeline`` (not yet run) defaults to the DirectRunner's.
    """
    schema = tfdv.load_schema_text(schema_path)
    compared = drift.drift_schema(schema, thresholds)
    with tempfile.TemporaryDirectory(prefix="aiqleads-drift-") as scratch:
        out_dir = os.path.join(reference_dir or scratch, STATISTICS_DIR)
        job = beam_stats.StatsJob(
            examples_uri, tuple(splits), TRAIN_SPLIT, thresholds.features, compared, out_dir
        )
        spans, newest, previous = beam_stats.compute(pipeline or beam.Pipeline(), job)
    if reference_dir is not None and spans.training is not None:
        write_reference(*drift.reference_from(spans.training, schema, thresholds), reference_dir)
    return drift.compare_statistics(
        spans,
        serving=example_io.read_serving_logs(serving_log_dir, max_serving_records),
        schema=schema,
        thresholds=thresholds,
        current_span=str(newest),
        previous_span=None if previous is None else str(previous),
        trigger_reason=trigger_reason,
    )


def write_reference(statistics, schema, directory: str) -> None:
    """The reference the online monitor compares served traffic with (`spec.REFERENCE_*`)."""
    tf.io.gfile.makedirs(directory)
    io_utils.write_bytes_file(
        os.path.join(directory, s.REFERENCE_STATISTICS), statistics.SerializeToString()
    )
    tfdv.write_schema_text(schema, os.path.join(directory, s.REFERENCE_SCHEMA))


def write_report(report: drift.DriftReport, directory: str) -> None:
    tf.io.gfile.makedirs(directory)
    io_utils.write_string_file(os.path.join(directory, s.REPORT_JSON), report.to_json())
    io_utils.write_string_file(os.path.join(directory, s.REPORT_TEXT), report.to_text())


def read_report(directory: str) -> drift.DriftReport | None:
    """The report `write_report` left in ``directory``, or None when there is none."""
    path = os.path.join(directory, s.REPORT_JSON)
    if not tf.io.gfile.exists(path):
        return None
    return drift.DriftReport.from_json(io_utils.read_string_file(path))


def for_kfp_ui(report: drift.DriftReport, page: types.Artifact, metrics: types.Artifact) -> None:
    """The report as the Kubeflow Pipelines UI shows it: a page with the verdict and every
    measurement against its limit, and each measurement's value (``<kind>/<feature>``) and
    the verdict (``passed``) as scalar metrics."""
    shifts = set(report.shifts)
    rows = [
        (
            m.kind,
            m.feature,
            m.measure,
            f"{m.value:.4f}",
            f"{m.threshold:.4f}",
            "shift (retrain)" if m in shifts else "VIOLATION" if m.violated else "ok",
        )
        for m in sorted(report.measurements, key=lambda m: m.value / m.threshold, reverse=True)
    ]
    verdict = "pass" if report.passed else "fail"
    body = (
        f"<h1>Drift check: <span class='{verdict}'>{verdict.upper()}ED</span></h1>"
        f"<p>newest span {html.escape(report.current_span)} against "
        f"{html.escape(report.previous_span or '-')}; serving records "
        f"{report.serving_records}; run reason {html.escape(report.trigger_reason or '-')}</p>"
        + (f"<p class='fail'>{html.escape(report.reason)}</p>" if report.reason else "")
        + kfp_visuals.html_table(("kind", "feature", "measure", "value", "limit", "status"), rows)
    )
    page.value = kfp_visuals.html_page("Drift check", body)
    values = {f"{m.kind}/{m.feature}": m.value for m in report.measurements}
    kfp_visuals.write_metrics(metrics, {"passed": float(report.passed), **values})


class Executor(ComponentBeamExecutor):
    """Compares spans and serving logs; fails the execution on any violation."""

    def execute(self, execution: Execution) -> execution_result_pb2.ExecutorOutput | None:
        examples = execution.input(s.EXAMPLES_KEY)
        schema = execution.input(s.SCHEMA_KEY)
        report_artifact = execution.output(s.REPORT_KEY)
        exec_properties = execution.properties
        report = run_check(
            examples_uri=examples.uri,
            splits=standard_artifact_utils.decode_split_names(examples.split_names),
            schema_path=io_utils.get_only_uri_in_dir(schema.uri),
            thresholds=thresholds_from_json(exec_properties[s.THRESHOLDS_KEY]),
            serving_log_dir=exec_properties.get(s.SERVING_LOG_DIR_KEY) or None,
            max_serving_records=int(exec_properties[s.MAX_SERVING_RECORDS_KEY]),
            trigger_reason=exec_properties.get(s.TRIGGER_REASON_KEY) or "",
            reference_dir=report_artifact.uri,
            pipeline=self._make_beam_pipeline(),
        )
        write_report(report, report_artifact.uri)
        for_kfp_ui(
            report,
            execution.output(s.VISUALIZATION_KEY),
            execution.output(s.METRICS_KEY),
        )
        report_artifact.set_int_custom_property(s.PASSED_PROPERTY, int(report.passed))
        report_artifact.set_string_custom_property(s.REASON_PROPERTY, report.reason)
        report_artifact.set_string_custom_property(s.TRIGGER_REASON_PROPERTY, report.trigger_reason)
        report_artifact.set_string_custom_property(
            s.SHIFTS_PROPERTY, "; ".join(f"{m.kind} on {m.feature}" for m in report.shifts)
        )
        if report.passed:
            return None
        parent, name = os.path.split(report_artifact.uri.rstrip("/"))
        write_report(report, os.path.join(parent, f"rejected-{name}"))
        return failed_execution(f"drift check failed: {report.reason}\n\n{report.to_text()}")
