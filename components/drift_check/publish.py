"""PublishReference: after a push, the drift check's reference goes next to the pushed model.

The online monitor compares served traffic with the training statistics of the version that
answered; it finds them by version, under the model base path the model servers read:
``<base>/<version>/assets.extra/aiqleads_reference/`` (`REFERENCE_DIR`), which TF Serving
ignores. The Evaluator's overall metrics of the version go there too
(`OFFLINE_METRICS`, e.g. its NDCG@10), for the dashboards. A run that pushed nothing
publishes nothing.
"""

# No `from __future__ import annotations`: TFX reads the function's annotations as types.

import json
import os

import tensorflow as tf
import tensorflow_model_analysis as tfma
from tfx.dsl.component.experimental.annotations import InputArtifact
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts

from aiqleads.tf_serving_warmup import ASSETS_EXTRA
from components.drift_check import spec

REFERENCE_DIR = "aiqleads_reference"  # under <version>/assets.extra/
PUSHED_PROPERTY = "pushed"  # the Pusher's custom properties (tfx.components.pusher.executor)
PUSHED_DESTINATION_PROPERTY = "pushed_destination"
REFERENCE_FILES = (spec.REFERENCE_STATISTICS, spec.REFERENCE_SCHEMA)
OFFLINE_METRICS = "offline_metrics.json"  # {"ndcg@10": 0.41, ...}: the candidate's overall


def overall_metrics(evaluation_uri: str) -> dict[str, float]:
    """The evaluated model's overall-slice metrics (``name@k`` for top-k ones)."""
    out: dict[str, float] = {}
    for metrics_for_slice in tfma.load_metrics(evaluation_uri):
        if metrics_for_slice.slice_key.single_slice_keys:
            continue
        for kv in metrics_for_slice.metric_keys_and_values:
            key = kv.key
            if key.is_diff or key.model_name not in ("", "candidate"):
                continue
            if not kv.value.HasField("double_value"):
                continue
            name = key.name
            if key.HasField("sub_key") and key.sub_key.HasField("top_k"):
                name = f"{name}@{key.sub_key.top_k.value}"
            out[name] = kv.value.double_value.value
    return out


def publish(
    report_uri: str, pushed_destination: str, metrics: dict[str, float] | None = None
) -> list[str]:
    """Copy a drift report's reference files (and write the offline ``metrics``) into a
    pushed model; the paths written."""
    target = os.path.join(pushed_destination, ASSETS_EXTRA, REFERENCE_DIR)
    tf.io.gfile.makedirs(target)
    written = []
    for name in REFERENCE_FILES:
        source = os.path.join(report_uri, name)
        if tf.io.gfile.exists(source):
            tf.io.gfile.copy(source, os.path.join(target, name), overwrite=True)
            written.append(os.path.join(target, name))
    if metrics:
        path = os.path.join(target, OFFLINE_METRICS)
        tf.io.gfile.GFile(path, "w").write(json.dumps(metrics, indent=2, sort_keys=True))
        written.append(path)
    return written


@component
def PublishReference(
    pushed_model: InputArtifact[standard_artifacts.PushedModel],
    report: InputArtifact[spec.DriftReport],
    evaluation: InputArtifact[standard_artifacts.ModelEvaluation],
) -> None:
    """Put the drift report's reference statistics and the Evaluator's overall metrics next
    to the pushed model version."""
    if not pushed_model.get_int_custom_property(PUSHED_PROPERTY):
        return
    publish(
        report.uri,
        pushed_model.get_string_custom_property(PUSHED_DESTINATION_PROPERTY),
        overall_metrics(evaluation.uri),
    )
