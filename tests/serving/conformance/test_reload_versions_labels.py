"""Reload (ModelService.HandleReloadConfigRequest), several versions, and version labels.

Adds TF Serving's two-version model with policy `all` and labels stable -> 123, canary ->
124, checks routing by version and label over gRPC and REST, then restores the original
config so the other tests see the server as they expect.
"""

from __future__ import annotations

import json
import time

import conformance_support as support
import grpc
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    prediction_service_pb2_grpc,
)
from tensorflow_serving.config import model_server_config_pb2

TIMEOUT = 60
VERSIONS_MODEL = "half_plus_two_versions"


def _config(testdata: str, labels: dict[str, int] | None):
    config = text_format.Parse(
        support.model_config_text(testdata), model_server_config_pb2.ModelServerConfig()
    )
    if labels is not None:
        extra = config.model_config_list.config.add()
        extra.name = VERSIONS_MODEL
        extra.base_path = f"{testdata}/saved_model_half_plus_two_2_versions"
        extra.model_platform = "tensorflow"
        extra.model_version_policy.all.SetInParent()
        for label, version in labels.items():
            extra.version_labels[label] = version
    return config


def _reload(models, config):
    request = model_management_pb2.ReloadConfigRequest()
    request.config.CopyFrom(config)
    return models.HandleReloadConfigRequest(request, timeout=TIMEOUT)


def _available(models, name: str) -> set[int]:
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = name
    try:
        response = models.GetModelStatus(request, timeout=TIMEOUT)
    except grpc.RpcError:
        return set()
    return {s.version for s in response.model_version_status if s.state == 30}


def _predict_version(predictions, **spec) -> int:
    request = support.predict_request(VERSIONS_MODEL, [2.0], **spec)
    response = predictions.Predict(request, timeout=TIMEOUT)
    np.testing.assert_array_equal(tf.make_ndarray(response.outputs["y"]), [3.0])
    return response.model_spec.version.value


@pytest.fixture
def two_versions(target, channel):
    models = model_service_pb2_grpc.ModelServiceStub(channel)
    response = _reload(models, _config(target.testdata, {"stable": 123, "canary": 124}))
    assert response.status.error_code == 0
    deadline = time.monotonic() + TIMEOUT
    while _available(models, VERSIONS_MODEL) != {123, 124} and time.monotonic() < deadline:
        time.sleep(0.5)
    yield models
    _reload(models, _config(target.testdata, None))


def test_versions_and_labels_route_requests(two_versions, channel, target):
    predictions = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    assert _available(two_versions, VERSIONS_MODEL) == {123, 124}
    assert _predict_version(predictions) == 124  # latest
    assert _predict_version(predictions, version=123) == 123
    assert _predict_version(predictions, version_label="stable") == 123
    assert _predict_version(predictions, version_label="canary") == 124

    status, body = support.call(
        target.rest_url, "POST", f"/v1/models/{VERSIONS_MODEL}/labels/stable:predict",
        {"instances": [2.0]},
    )  # fmt: skip
    assert (status, body) == (200, {"predictions": [3.0]})
    status, body = support.call(target.rest_url, "GET", f"/v1/models/{VERSIONS_MODEL}")
    assert status == 200
    assert sorted(s["version"] for s in body["model_version_status"]) == ["123", "124"]


def test_metadata_of_two_version_model_matches_tf_serving(two_versions, target):
    status, body = support.call(
        target.rest_url, "GET", f"/v1/models/{VERSIONS_MODEL}/versions/123/metadata"
    )
    assert status == 200
    expected_file = support.TESTDATA / "saved_model_half_plus_two_2_versions_metadata.json"
    expected = json.loads(expected_file.read_text())
    expected["model_spec"]["name"] = VERSIONS_MODEL
    assert body == expected


def test_label_on_unavailable_version_fails_precondition(two_versions, target):
    with pytest.raises(grpc.RpcError) as e:
        _reload(two_versions, _config(target.testdata, {"stable": 123, "canary": 125}))
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "125" in e.value.details()


def test_removed_model_is_not_found_after_reload(two_versions, channel, target):
    _reload(two_versions, _config(target.testdata, None))
    predictions = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    with pytest.raises(grpc.RpcError) as e:
        _predict_version(predictions)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
