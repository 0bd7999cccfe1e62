"""Executor of the serving smoke validation: a thin `Do()` around `smoke.check_saved_model`."""

from __future__ import annotations

import json
import os
from typing import Any

import tensorflow as tf
from tfx import types
from tfx.components.util import model_utils
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import io_utils, path_utils

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


class Executor(base_executor.BaseExecutor):
    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
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
