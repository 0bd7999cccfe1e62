"""Executor of the serving smoke validation: a thin `Do()` around `smoke.check_saved_model`."""

from __future__ import annotations

import json
import os

import tensorflow as tf
from tfx import types
from tfx.components.util import model_utils
from tfx.utils import io_utils, path_utils

from components import evaluation_table, kfp_visuals
from components.executor_io import ComponentExecutor, Execution
from components.serving_smoke import smoke
from components.serving_smoke import spec as s


def write_blessing(blessing: types.Artifact, model: types.Artifact, report: smoke.SmokeReport):
    """Files and custom properties the Pusher (and people) read."""
    io_utils.write_string_file(os.path.join(blessing.uri, s.REPORT_JSON), report.to_json())
    name = s.BLESSED_FILE if report.passed else s.NOT_BLESSED_FILE
    io_utils.write_string_file(os.path.join(blessing.uri, name), "")
    verdict = s.BLESSED_VALUE if report.passed else s.NOT_BLESSED_VALUE
    blessing.set_int_custom_property(s.BLESSED_PROPERTY, verdict)
    blessing.set_string_custom_property(s.CURRENT_MODEL_PROPERTY, model.uri)
    blessing.set_int_custom_property(s.CURRENT_MODEL_ID_PROPERTY, model.id)
    blessing.set_string_custom_property(s.REASON_PROPERTY, "; ".join(report.reasons) or "ok")
    if report.recommend_p95_ms is not None:
        blessing.set_float_custom_property(s.P95_PROPERTY, report.recommend_p95_ms)


def gate_summary(
    report: smoke.SmokeReport,
    evaluator_blessed: bool | None,
    rows: list[evaluation_table.MetricRow],
) -> tuple[str, dict[str, float]]:
    """The gate as the Kubeflow Pipelines UI shows it: Markdown (the verdicts, the
    evaluation table of the overall slice, the smoke checks) and the scalar metrics (the
    candidate's overall metrics, the smoke latency, the verdicts as 0/1)."""
    evaluator = {None: "not run", True: "blessed", False: "NOT blessed"}[evaluator_blessed]
    lines = [
        "## Model gate",
        "",
        f"- Evaluator (TFMA thresholds): **{evaluator}**",
        f"- Serving smoke validation: **{'passed' if report.passed else 'FAILED'}**"
        + (f" ({'; '.join(report.reasons)})" if report.reasons else ""),
        "",
    ]
    if rows:
        lines += ["### Evaluation, overall slice: candidate vs latest blessed model", ""]
        table = [
            (
                r.name,
                f"{r.candidate:.4f}",
                "-" if r.baseline is None else f"{r.baseline:.4f}",
                "-" if r.baseline is None else f"{r.candidate - r.baseline:+.4f}",
            )
            for r in rows
        ]
        lines.append(
            kfp_visuals.markdown_table(("metric", "candidate", "baseline", "change"), table)
        )
    if report.recommend_p95_ms is not None:
        lines += [
            "### Serving smoke validation",
            "",
            kfp_visuals.markdown_table(
                ("canary rows", "recommend p50 ms", "recommend p95 ms", "budget ms"),
                [
                    (
                        report.canary_rows,
                        f"{report.recommend_p50_ms:.2f}",
                        f"{report.recommend_p95_ms:.2f}",
                        f"{report.latency_budget_ms:g}",
                    )
                ],
            ),
        ]
    metrics = {r.name: r.candidate for r in rows}
    metrics["smoke_passed"] = float(report.passed)
    if evaluator_blessed is not None:
        metrics["evaluator_blessed"] = float(evaluator_blessed)
    if report.recommend_p95_ms is not None:
        metrics["recommend_p95_ms"] = report.recommend_p95_ms
    return "\n".join(lines), metrics


class Executor(ComponentExecutor):
    """Blesses a model the Evaluator blessed that passes the serving smoke check; writes the
    gate's summary for the KFP UI."""

    def execute(self, execution: Execution) -> None:
        model = execution.input(s.MODEL_KEY)
        blessing = execution.output(s.BLESSING_KEY)
        exec_properties = execution.properties
        upstream = execution.optional_input(s.UPSTREAM_BLESSING_KEY)
        if upstream is not None and not model_utils.is_model_blessed(upstream):
            report = smoke.SmokeReport(passed=False, reasons=["not blessed by the Evaluator"])
        else:
            report = smoke.check_saved_model(
                path_utils.serving_model_path(model.uri),
                latency_budget_ms=float(exec_properties[s.LATENCY_BUDGET_MS_KEY]),
                latency_requests=int(exec_properties[s.LATENCY_REQUESTS_KEY]),
                top_k=int(exec_properties[s.TOP_K_KEY]),
            )
        tf.get_logger().info("serving smoke: %s", json.dumps(report.summary()))
        write_blessing(blessing, model, report)
        evaluation = execution.optional_input(s.EVALUATION_KEY)
        rows = evaluation_table.overall_metrics(evaluation.uri) if evaluation is not None else []
        evaluator_blessed = model_utils.is_model_blessed(upstream) if upstream is not None else None
        text, metrics = gate_summary(report, evaluator_blessed, rows)
        execution.output(s.SUMMARY_KEY).value = text
        kfp_visuals.write_metrics(execution.output(s.METRICS_KEY), metrics)
