"""PublishReference: after a push, the drift check's reference goes next to the pushed model.

The online monitor compares served traffic with the training statistics of the version that
answered; it finds them by version, under the model base path the model servers read:
``<base>/<version>/assets.extra/aiqleads_reference/`` (`REFERENCE_DIR`), which TF Serving
ignores. A run that pushed nothing publishes nothing.
"""

# No `from __future__ import annotations`: TFX reads the function's annotations as types.

import os

import tensorflow as tf
from tfx.dsl.component.experimental.annotations import InputArtifact
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts

from aiqleads.tf_serving_warmup import ASSETS_EXTRA
from components.drift_check import spec

REFERENCE_DIR = "aiqleads_reference"  # under <version>/assets.extra/
PUSHED_PROPERTY = "pushed"  # the Pusher's custom properties (tfx.components.pusher.executor)
PUSHED_DESTINATION_PROPERTY = "pushed_destination"
REFERENCE_FILES = (spec.REFERENCE_STATISTICS, spec.REFERENCE_SCHEMA)


def publish(report_uri: str, pushed_destination: str) -> list[str]:
    """Copy the reference files of a drift report into a pushed model; the paths written."""
    target = os.path.join(pushed_destination, ASSETS_EXTRA, REFERENCE_DIR)
    tf.io.gfile.makedirs(target)
    written = []
    for name in REFERENCE_FILES:
        source = os.path.join(report_uri, name)
        if tf.io.gfile.exists(source):
            tf.io.gfile.copy(source, os.path.join(target, name), overwrite=True)
            written.append(os.path.join(target, name))
    return written


@component
def PublishReference(
    pushed_model: InputArtifact[standard_artifacts.PushedModel],
    report: InputArtifact[spec.DriftReport],
) -> None:
    """Put the drift report's reference statistics next to the pushed model version."""
    if not pushed_model.get_int_custom_property(PUSHED_PROPERTY):
        return
    publish(report.uri, pushed_model.get_string_custom_property(PUSHED_DESTINATION_PROPERTY))
