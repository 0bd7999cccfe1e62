"""gRPC conformance through the official `tensorflow_serving.apis` stubs.

half_plus_two is y = 0.5 * x + 2 (expected values by hand), as TF1 (`half_plus_two`) and TF2
(`half_plus_two_tf2`) exports with the same signatures: `classify_x_to_y` (scores y),
`regress_x_to_y` (y) and `regress_x_to_y2` (y2 = 0.5 * x + 3) over serialized tf.Examples of
a float feature `x`. The TF1 export's method names are classify/regress; the TF2 export's are
all predict, and TF Serving serves Classify and Regress on both (the signature's inputs and
outputs decide, not its method name).
"""

from __future__ import annotations

import conformance_support as support
import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

TIMEOUT = 30
Classification = classification_pb2.ClassificationRequest
Regression = regression_pb2.RegressionRequest


@pytest.fixture
def predictions(channel):
    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


@pytest.fixture
def models(channel):
    return model_service_pb2_grpc.ModelServiceStub(channel)


def _predict_request(model="half_plus_two", **spec):
    return support.predict_request(model, [[1.0], [2.0], [5.0]], **spec)


def _invalid_argument(call, request) -> str:
    """The details of the INVALID_ARGUMENT error that ``call(request)`` must fail with."""
    with pytest.raises(grpc.RpcError) as e:
        call(request, timeout=TIMEOUT)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    return e.value.details()


def test_predict_and_response_model_spec(predictions):
    response = predictions.Predict(_predict_request(), timeout=TIMEOUT)
    np.testing.assert_array_equal(tf.make_ndarray(response.outputs["y"]), [[2.5], [3.0], [4.5]])
    assert response.model_spec.name == "half_plus_two"
    assert response.model_spec.version.value == 123
    assert response.model_spec.signature_name == "serving_default"


def test_predict_float_val_encoding_and_scalar_broadcast(predictions):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "half_plus_three"
    tensor = request.inputs["x"]
    tensor.dtype = tf.float32.as_datatype_enum
    tensor.tensor_shape.dim.add().size = 2
    tensor.float_val.extend([4.0, 6.0])
    response = predictions.Predict(request, timeout=TIMEOUT)
    np.testing.assert_array_equal(tf.make_ndarray(response.outputs["y"]), [5.0, 6.0])


def test_predict_output_filter(predictions):
    request = _predict_request()
    request.output_filter.append("y")
    assert list(predictions.Predict(request, timeout=TIMEOUT).outputs) == ["y"]
    request.output_filter[:] = ["nope"]
    _invalid_argument(predictions.Predict, request)


@pytest.mark.parametrize(
    ("spec", "code", "message"),
    [
        (
            {"model": "nope"},
            grpc.StatusCode.NOT_FOUND,
            "Servable not found for request: Latest(nope)",
        ),
        (
            {"version": 999},
            grpc.StatusCode.NOT_FOUND,
            "Servable not found for request: Specific(half_plus_two, 999)",
        ),
        (
            {"version_label": "nope"},
            grpc.StatusCode.INVALID_ARGUMENT,
            "Unrecognized servable version label: nope",
        ),
        (
            {"signature_name": "nope"},
            grpc.StatusCode.FAILED_PRECONDITION,
            'Serving signature key "nope" not found.',
        ),
    ],
)
def test_predict_error_codes(predictions, spec, code, message):
    with pytest.raises(grpc.RpcError) as e:
        predictions.Predict(_predict_request(**spec), timeout=TIMEOUT)
    assert e.value.code() == code
    assert e.value.details() == message


def test_predict_wrong_dtype_and_missing_input_are_invalid_argument(predictions):
    request = _predict_request()
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array([[1]], np.int32)))
    _invalid_argument(predictions.Predict, request)
    del request.inputs["x"]
    request.inputs["z"].CopyFrom(tf.make_tensor_proto(np.array([[1.0]], np.float32)))
    _invalid_argument(predictions.Predict, request)


def _examples_request(request_type, model, signature_name=None, xs=()):
    """A Classify or Regress request (``request_type``) of ``model``'s ``signature_name``
    (None: serving_default) over one serialized tf.Example per float in ``xs``."""
    request = request_type()
    request.model_spec.name = model
    if signature_name is not None:
        request.model_spec.signature_name = signature_name
    for x in xs:
        request.input.example_list.examples.add().features.feature["x"].float_list.value.append(x)
    return request


@pytest.mark.parametrize("model", support.HALF_PLUS_TWO_MODELS)
def test_classify(predictions, model):
    request = _examples_request(Classification, model, "classify_x_to_y", [2.0, 8.0])
    response = predictions.Classify(request, timeout=TIMEOUT)
    scores = [[c.score for c in row.classes] for row in response.result.classifications]
    assert scores == [[3.0], [6.0]]
    assert response.model_spec.version.value == 123
    assert response.model_spec.signature_name == "classify_x_to_y"


@pytest.mark.parametrize("model", support.HALF_PLUS_TWO_MODELS)
def test_regress(predictions, model):
    request = _examples_request(Regression, model, "regress_x_to_y", [2.0, 4.0])
    response = predictions.Regress(request, timeout=TIMEOUT)
    assert [r.value for r in response.result.regressions] == [3.0, 4.0]
    assert (response.model_spec.name, response.model_spec.version.value) == (model, 123)
    assert response.model_spec.signature_name == "regress_x_to_y"


@pytest.mark.parametrize("model", support.HALF_PLUS_TWO_MODELS)
def test_regress_with_context(predictions, model):
    request = _examples_request(Regression, model, "regress_x_to_y2")
    target = request.input.example_list_with_context
    target.context.features.feature["x"].float_list.value.append(6.0)
    target.examples.add()
    response = predictions.Regress(request, timeout=TIMEOUT)
    assert [r.value for r in response.result.regressions] == [6.0]  # 0.5 * 6 + 3


@pytest.mark.parametrize("model", support.HALF_PLUS_TWO_MODELS)
def test_regress_on_predict_signature_is_invalid_argument(predictions, model):
    # No signature name: serving_default, a predict signature.
    request = _examples_request(Regression, model, xs=[2.0])
    details = _invalid_argument(predictions.Regress, request)
    # Its input is `x`, not the serialized examples' `inputs`.
    assert details.startswith("No regression inputs found in SignatureDef: ")


@pytest.mark.parametrize("model", support.HALF_PLUS_TWO_MODELS)
def test_classify_on_a_regression_signature_names_the_missing_outputs(predictions, model):
    # regress_x_to_y has one output, `outputs`.
    request = _examples_request(Classification, model, "regress_x_to_y", [2.0])
    assert _invalid_argument(predictions.Classify, request).startswith(
        'Expected classification signature outputs to contain at least one of "classes" or '
        '"scores". Signature was: '
    )


@pytest.mark.parametrize("model", support.HALF_PLUS_TWO_MODELS)
def test_classify_on_a_missing_signature(predictions, model):
    request = _examples_request(Classification, model, "nope", [2.0])
    details = _invalid_argument(predictions.Classify, request)
    assert details == "No signature was found with the name: nope"


def test_get_model_metadata(predictions):
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = "half_plus_two"
    request.metadata_field.append("signature_def")
    response = predictions.GetModelMetadata(request, timeout=TIMEOUT)
    assert response.model_spec.version.value == 123
    sigmap = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(sigmap)
    assert set(sigmap.signature_def) == {
        "serving_default",
        "classify_x_to_y",
        "regress_x_to_y",
        "regress_x_to_y2",
        "regress_x2_to_y3",
    }
    assert sigmap.signature_def["serving_default"].inputs["x"].name == "x:0"


def test_get_model_status(models):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "half_plus_three"
    response = models.GetModelStatus(request, timeout=TIMEOUT)
    [status] = response.model_version_status
    assert (status.version, status.state, status.status.error_code) == (123, 30, 0)
    request.model_spec.name = "nope"
    with pytest.raises(grpc.RpcError) as e:
        models.GetModelStatus(request, timeout=TIMEOUT)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
