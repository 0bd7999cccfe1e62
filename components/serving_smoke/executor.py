"""Executor of the serving smoke validation: a thin `Do()` around `smoke.check_saved_model`."""

from __future__ import annotations

import json
import os

import tensorflow as tf
from tfx import types
from tfx.components.util import model_utils
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import io_utils, path_utils

from components import evaluation_table, kfp_visuals
from components.executor_io import Artifacts, ExecProperties
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


class Executor(base_executor.BaseExecutor):
    def Do(
        self,
        input_dict: Artifacts,
        output_dict: Artifacts,
        exec_properties: ExecProperties,
    ) -> None:
        model = artifact_utils.get_single_instance(input_dict[s.MODEL_KEY])
        blessing = artifact_utils.get_single_instance(output_dict[s.BLESSING_KEY])
        upstream = input_dict.get(s.UPSTREAM_BLESSING_KEY) or []
        if upstream and not model_utils.is_model_blessed(upstream[0]):
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
        evaluations = input_dict.get(s.EVALUATION_KEY) or []
        rows = evaluation_table.overall_metrics(evaluations[0].uri) if evaluations else []
        evaluator_blessed = model_utils.is_model_blessed(upstream[0]) if upstream else None
        text, metrics = gate_summary(report, evaluator_blessed, rows)
        artifact_utils.get_single_instance(output_dict[s.SUMMARY_KEY]).value = text
        kfp_visuals.write_metrics(
            artifact_utils.get_single_instance(output_dict[s.METRICS_KEY]), metrics
        )
