"""REST API conformance: URLs, both predict formats, classify, regress, metadata, status, errors.

Expected numbers derived by hand: half_plus_two is y = 0.5 * x + 2, half_plus_three
y = 0.5 * x + 3; `regress_x_to_y2` of half_plus_two is y2 = 0.5 * x + 3. Classify and regress
run on both half_plus_two exports, TF1 and TF2 (test_grpc_api.py), and answer under TF
Serving's key `results` (`tensorflow_serving/util/json_tensor.cc`).
"""

from __future__ import annotations

import base64
import json

import conformance_support as support
import pytest


@pytest.fixture
def rest(target):
    return lambda method, path, body=None, raw=None: support.call(
        target.rest_url, method, path, body, raw
    )


def test_predict_row_format(rest):
    assert rest("POST", "/v1/models/half_plus_two:predict", {"instances": [1.0, 2.0, 5.0]}) == (
        200,
        {"predictions": [2.5, 3.0, 4.5]},
    )


def test_predict_row_format_named_instances_and_rank2(rest):
    body = {"instances": [{"x": [1.0]}, {"x": [3.0]}]}
    assert rest("POST", "/v1/models/half_plus_two:predict", body) == (
        200,
        {"predictions": [[2.5], [3.5]]},
    )


def test_predict_columnar_format(rest):
    status, body = rest("POST", "/v1/models/half_plus_two:predict", {"inputs": [[1.0], [2.0]]})
    assert (status, body) == (200, {"outputs": [[2.5], [3.0]]})
    status, body = rest("POST", "/v1/models/half_plus_two:predict", {"inputs": {"x": [4.0]}})
    assert (status, body) == (200, {"outputs": [4.0]})


def test_predict_other_model_and_explicit_version(rest):
    status, body = rest(
        "POST", "/v1/models/half_plus_three/versions/123:predict", {"instances": [1.0, 2.0]}
    )
    assert (status, body) == (200, {"predictions": [3.5, 4.0]})


def test_predict_integers_are_accepted_for_float_inputs(rest):
    assert rest("POST", "/v1/models/half_plus_two:predict", {"instances": [2, 4]}) == (
        200,
        {"predictions": [3.0, 4.0]},
    )


@pytest.mark.parametrize("model", support.HALF_PLUS_TWO_MODELS)
def test_classify(rest, model):
    body = {"signature_name": "classify_x_to_y", "examples": [{"x": 2.0}, {"x": 4.0}]}
    assert rest("POST", f"/v1/models/{model}:classify", body) == (
        200,
        {"results": [[["", 3.0]], [["", 4.0]]]},
    )


@pytest.mark.parametrize("model", support.HALF_PLUS_TWO_MODELS)
def test_regress(rest, model):
    body = {"signature_name": "regress_x_to_y", "examples": [{"x": 2.0}, {"x": 6.0}]}
    assert rest("POST", f"/v1/models/{model}:regress", body) == (
        200,
        {"results": [3.0, 5.0]},
    )
    body = {"signature_name": "regress_x_to_y2", "examples": [{"x": 2.0}]}
    assert rest("POST", f"/v1/models/{model}/versions/123:regress", body) == (
        200,
        {"results": [4.0]},
    )


@pytest.mark.parametrize("model", support.HALF_PLUS_TWO_MODELS)
def test_regress_with_context(rest, model):
    body = {"signature_name": "regress_x_to_y", "context": {"x": 4.0}, "examples": [{}]}
    assert rest("POST", f"/v1/models/{model}:regress", body) == (200, {"results": [4.0]})


def test_metadata_matches_tf_serving_answer(rest):
    status, body = rest("GET", "/v1/models/half_plus_two/metadata")
    assert status == 200
    expected = json.loads((support.TESTDATA / "half_plus_two_model_metadata.json").read_text())
    expected["model_spec"]["name"] = "half_plus_two"  # the file was recorded as "default"
    assert body == expected


def test_metadata_of_a_version(rest):
    status, body = rest("GET", "/v1/models/half_plus_two/versions/123/metadata")
    assert status == 200
    assert body["model_spec"] == {"name": "half_plus_two", "signature_name": "", "version": "123"}


def test_status(rest):
    expected = {
        "model_version_status": [
            {
                "version": "123",
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
        ]
    }
    assert rest("GET", "/v1/models/half_plus_two") == (200, expected)
    assert rest("GET", "/v1/models/half_plus_two/versions/123") == (200, expected)


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "message"),
    [
        ("GET", "/v1/models/nope", None, 404, "Could not find any versions of model nope"),
        (
            "GET",
            "/v1/models/half_plus_two/versions/999",
            None,
            404,
            "Could not find version 999 of model half_plus_two",
        ),
        (
            "POST",
            "/v1/models/nope:predict",
            {"instances": [1.0]},
            404,
            "Servable not found for request: Latest(nope)",
        ),
        (
            "POST",
            "/v1/models/half_plus_two/versions/999:predict",
            {"instances": [1.0]},
            404,
            "Servable not found for request: Specific(half_plus_two, 999)",
        ),
        (
            "POST",
            "/v1/models/half_plus_two:predict",
            {"signature_name": "nope", "instances": [1.0]},
            400,
            'Serving signature key "nope" not found.',
        ),
        (
            "POST",
            "/v1/models/half_plus_two/labels/nope:predict",
            {"instances": [1.0]},
            400,
            "Unrecognized servable version label: nope",
        ),
    ],
)
def test_error_statuses_and_bodies(rest, method, path, body, status, message):
    assert rest(method, path, body) == (status, {"error": message})


@pytest.mark.parametrize(
    "raw",
    [b"{not json", b'{"neither": 1}', b'{"instances": [1.0], "inputs": [1.0]}', b'["x"]'],
)
def test_bad_predict_bodies_are_400_with_an_error(rest, raw):
    status, body = rest("POST", "/v1/models/half_plus_two:predict", raw=raw)
    assert status == 400
    assert set(body) == {"error"} and body["error"]


def test_wrong_input_type_is_400(rest):
    status, body = rest("POST", "/v1/models/half_plus_two:predict", {"instances": ["a"]})
    assert status == 400 and "error" in body


@pytest.mark.parametrize("model", support.HALF_PLUS_TWO_MODELS)
def test_classify_on_a_regression_signature_is_400(rest, model):
    body = {"signature_name": "regress_x_to_y", "examples": [{"x": 2.0}]}
    status, answer = rest("POST", f"/v1/models/{model}:classify", body)
    assert status == 400
    # The signature's outputs decide, not its method name (which only
    # --enable_signature_method_name_check looks at: tests/serving/model_server).
    assert answer["error"].startswith(
        'Expected classification signature outputs to contain at least one of "classes" or '
        '"scores". Signature was: '
    )


@pytest.mark.parametrize("model", support.HALF_PLUS_TWO_MODELS)
def test_regress_on_the_predict_signature_is_400(rest, model):
    body = {"examples": [{"x": 2.0}]}  # serving_default: input `x`, not `inputs`
    status, answer = rest("POST", f"/v1/models/{model}:regress", body)
    assert status == 400
    assert answer["error"].startswith("No regression inputs found in SignatureDef: ")


def test_b64_string_inputs_reach_the_model(rest):
    # classify_x_to_y takes serialized tf.Examples: send one as {"b64": ...} through predict.
    from tensorflow.core.example import example_pb2

    example = example_pb2.Example()
    example.features.feature["x"].float_list.value.append(6.0)
    encoded = base64.b64encode(example.SerializeToString()).decode()
    body = {"signature_name": "classify_x_to_y", "instances": [{"b64": encoded}]}
    assert rest("POST", "/v1/models/half_plus_two:predict", body) == (
        200,
        {"predictions": [[5.0]]},
    )


def test_prometheus_endpoint_counts_requests(rest):
    rest("POST", "/v1/models/half_plus_two:predict", {"instances": [1.0]})
    status, text = rest("GET", "/monitoring/prometheus/metrics")
    assert status == 200
    assert ':tensorflow:serving:request_count{model_name="half_plus_two",status="OK"}' in text
