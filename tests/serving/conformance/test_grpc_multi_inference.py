"""PredictionService.MultiInference: several Classify and Regress tasks over one shared input.

On both half_plus_two exports (TF1 and TF2, see test_grpc_api.py): y = 0.5 * x + 2 from
`regress_x_to_y` and `classify_x_to_y` (as the score of one unnamed class), y2 = 0.5 * x + 3
from `regress_x_to_y2` (expected values by hand). MultiInference is a gRPC API only: TF
Serving's REST API has no such method.
"""

from __future__ import annotations

import conformance_support as support
import grpc
import pytest
from tensorflow_serving.apis import inference_pb2, prediction_service_pb2_grpc

TIMEOUT = 30
CLASSIFY = "tensorflow/serving/classify"
REGRESS = "tensorflow/serving/regress"
PREDICT = "tensorflow/serving/predict"


@pytest.fixture
def predictions(channel):
    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


def _request(tasks, xs=(2.0, 4.0), **spec) -> inference_pb2.MultiInferenceRequest:
    """`tasks`: (model, signature, method) each; `spec` (version, version_label) on every task."""
    request = inference_pb2.MultiInferenceRequest()
    for x in xs:
        request.input.example_list.examples.add().features.feature["x"].float_list.value.append(x)
    for model, signature, method in tasks:
        task = request.tasks.add(method_name=method)
        task.model_spec.name = model
        task.model_spec.signature_name = signature
        if "version" in spec:
            task.model_spec.version.value = spec["version"]
        if "version_label" in spec:
            task.model_spec.version_label = spec["version_label"]
    return request


def _error(predictions, request) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as e:
        predictions.MultiInference(request, timeout=TIMEOUT)
    return e.value.code(), e.value.details()


@pytest.mark.parametrize("model", support.HALF_PLUS_TWO_MODELS)
def test_classify_and_regress_tasks_share_one_input(predictions, model):
    request = _request(
        [
            (model, "regress_x_to_y", REGRESS),
            (model, "classify_x_to_y", CLASSIFY),
            (model, "regress_x_to_y2", REGRESS),
        ]
    )
    response = predictions.MultiInference(request, timeout=TIMEOUT)
    first, second, third = response.results
    assert [r.value for r in first.regression_result.regressions] == [3.0, 4.0]
    classes = [
        [(c.label, c.score) for c in row.classes]
        for row in second.classification_result.classifications
    ]
    assert classes == [[("", 3.0)], [("", 4.0)]]
    assert [r.value for r in third.regression_result.regressions] == [4.0, 5.0]
    specs = [
        (r.model_spec.name, r.model_spec.version.value, r.model_spec.signature_name)
        for r in response.results
    ]
    assert specs == [
        (model, 123, "regress_x_to_y"),
        (model, 123, "classify_x_to_y"),
        (model, 123, "regress_x_to_y2"),
    ]


@pytest.mark.parametrize("model", support.HALF_PLUS_TWO_MODELS)
def test_one_task_and_explicit_version(predictions, model):
    request = _request([(model, "classify_x_to_y", CLASSIFY)], xs=(8.0,), version=123)
    [result] = predictions.MultiInference(request, timeout=TIMEOUT).results
    assert [c.score for c in result.classification_result.classifications[0].classes] == [6.0]
    assert result.model_spec.version.value == 123


@pytest.mark.parametrize("model", support.HALF_PLUS_TWO_MODELS)
def test_examples_with_context(predictions, model):
    request = _request([(model, "regress_x_to_y", REGRESS)], xs=())
    request.input.example_list_with_context.context.features.feature["x"].float_list.value.append(
        10.0
    )
    request.input.example_list_with_context.examples.add()
    [result] = predictions.MultiInference(request, timeout=TIMEOUT).results
    assert [r.value for r in result.regression_result.regressions] == [7.0]


M = support.TF1_MODEL


@pytest.mark.parametrize(
    ("tasks", "code", "message"),
    [
        (
            [(M, "regress_x_to_y", REGRESS), ("half_plus_three", "regress_x_to_y", REGRESS)],
            grpc.StatusCode.INVALID_ARGUMENT,
            "All ModelSpecs in a MultiInferenceRequest must access the same model name.",
        ),
        (
            [(M, "regress_x_to_y", REGRESS), (M, "regress_x_to_y", REGRESS)],
            grpc.StatusCode.INVALID_ARGUMENT,
            "Duplicate evaluation of signature: regress_x_to_y",
        ),
        (
            [(M, "regress_x_to_y", REGRESS), (M, "regress_x_to_y", CLASSIFY)],
            grpc.StatusCode.INVALID_ARGUMENT,
            "Duplicate evaluation of signature: regress_x_to_y",
        ),
        (
            [(M, "nope", REGRESS)],
            grpc.StatusCode.INVALID_ARGUMENT,
            "Requested signature not found in model graph: nope",
        ),
        (
            [(M, "regress_x_to_y", REGRESS), (M, "", PREDICT)],
            grpc.StatusCode.UNIMPLEMENTED,
            f"Unsupported signature method_name: {PREDICT}",
        ),
        (
            [(M, "regress_x_to_y", REGRESS), ("", "classify_x_to_y", CLASSIFY)],
            grpc.StatusCode.INVALID_ARGUMENT,
            "Found ModelSpec with an empty model name.",
        ),
        ([], grpc.StatusCode.INVALID_ARGUMENT, "ModelSpec has no name specified."),
        (
            [("nope", "regress_x_to_y", REGRESS)],
            grpc.StatusCode.NOT_FOUND,
            "Servable not found for request: Latest(nope)",
        ),
    ],
)
def test_validation_errors(predictions, tasks, code, message):
    assert _error(predictions, _request(tasks)) == (code, message)


@pytest.mark.parametrize("model", support.HALF_PLUS_TWO_MODELS)
def test_a_signature_that_does_not_fit_its_task(predictions, model):
    code, message = _error(predictions, _request([(model, "regress_x_to_y", CLASSIFY)]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert message.startswith(
        'Expected classification signature outputs to contain at least one of "classes" or '
        '"scores". Signature was: '
    )
    code, message = _error(predictions, _request([(model, "serving_default", REGRESS)]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert message.startswith("No regression inputs found in SignatureDef: ")


def test_unknown_version_is_not_found(predictions):
    request = _request([(M, "regress_x_to_y", REGRESS)], version=999)
    assert _error(predictions, request) == (
        grpc.StatusCode.NOT_FOUND,
        f"Servable not found for request: Specific({M}, 999)",
    )


def test_rest_has_no_multi_inference_method(target):
    status, body = support.call(
        target.rest_url, "POST", f"/v1/models/{M}:multi_inference", {"examples": [{"x": 1.0}]}
    )
    assert (status, body) == (
        400,
        {"error": f"Malformed request: POST /v1/models/{M}:multi_inference"},
    )
