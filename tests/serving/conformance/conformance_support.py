"""Helpers of the conformance suite: the reference data folder, its model config, a REST call.

The suite's models: TF Serving's `good_model_config.txt` (half_plus_two and half_plus_three,
both TF1 exports) plus `half_plus_two_tf2`, TF Serving's TF2 export of half_plus_two
(`tf.saved_model.save`: every signature carries the predict method name).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import urllib.error
import urllib.request

REPO = pathlib.Path(__file__).resolve().parents[3]
TESTDATA = REPO.parent / "shared" / "testdata" / "tf_serving"


@dataclasses.dataclass(frozen=True)
class Target:
    """The server under test."""

    grpc_target: str
    rest_url: str
    testdata: str  # the reference models' folder as the server sees it


TF1_MODEL = "half_plus_two"
TF2_MODEL = "half_plus_two_tf2"
TF2_DIR = "saved_model_half_plus_two_tf2_cpu"
HALF_PLUS_TWO_MODELS = (TF1_MODEL, TF2_MODEL)  # the same y = 0.5 * x + 2, TF1 and TF2 exports


def model_config_text(testdata: str) -> str:
    """TF Serving's good_model_config.txt with its placeholders filled in for `testdata`, and
    the TF2 half_plus_two export added as `half_plus_two_tf2`."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    text = (TESTDATA / "good_model_config.txt").read_text()
    text = text.replace("${TEST_HALF_PLUS_TWO_DIR}", f"{testdata}/saved_model_half_plus_two_cpu")
    text = text.replace("${TEST_HALF_PLUS_THREE_DIR}", f"{testdata}/saved_model_half_plus_three")
    config = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    tf2 = config.model_config_list.config.add()
    tf2.name = TF2_MODEL
    tf2.base_path = f"{testdata}/{TF2_DIR}"
    tf2.model_platform = "tensorflow"
    return text_format.MessageToString(config)


def predict_request(model: str, x, **spec):
    """A PredictRequest of `model` with the float32 tensor ``x`` as its input `x`; ``spec``
    sets the model spec's fields (``version`` its number, ``version_label``,
    ``signature_name``)."""
    import numpy as np
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    for key, value in spec.items():
        if key == "version":
            request.model_spec.version.value = value
        else:
            setattr(request.model_spec, key, value)
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array(x, np.float32)))
    return request


def call(base: str, method: str, path: str, body=None, raw: bytes | None = None):
    """(HTTP status, parsed JSON or text) of one request; errors are answers, not raises."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            status, payload = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, payload = e.code, e.read()
    try:
        return status, json.loads(payload)
    except ValueError:
        return status, payload.decode(errors="replace")
