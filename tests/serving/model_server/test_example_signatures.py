"""Classify, Regress and MultiInference signature rules on the data plane, in process.

A TF2 model built here has what the reference models lack: a classification signature with
string `classes` next to its `scores`, and signatures whose outputs break TF Serving's result
rules. TF Serving's TF1 and TF2 half_plus_two cover `--enable_signature_method_name_check`.
Expected values by hand: `classify` scores x as [x / 10, 1 - x / 10] for labels
["low", "high"]; half_plus_two is y = 0.5 * x + 2.
"""

from __future__ import annotations

import pathlib

import pytest
from google.protobuf import text_format
from tensorflow_serving.apis import (
    classification_pb2,
    inference_pb2,
    predict_pb2,
    regression_pb2,
)
from tensorflow_serving.config import model_server_config_pb2

from serving.errors import Code, ServingError
from serving.model_server.dataplane import DataPlane
from serving.model_server.manager import ModelManager

CLASSIFY = "tensorflow/serving/classify"
REGRESS = "tensorflow/serving/regress"


@pytest.fixture(scope="module")
def labelled(tmp_path_factory) -> pathlib.Path:
    """A TF2 base path (version 1) whose signatures take serialized tf.Examples of `x`."""
    import tensorflow as tf

    spec = tf.TensorSpec([None], tf.string, name="inputs")

    def x_of(inputs):
        return tf.io.parse_example(inputs, {"x": tf.io.FixedLenFeature([1], tf.float32)})["x"]

    class Labelled(tf.Module):
        @tf.function(input_signature=[spec])
        def classify(self, inputs):
            x = x_of(inputs)
            labels = tf.tile(tf.constant([["low", "high"]]), [tf.shape(x)[0], 1])
            return {"classes": labels, "scores": tf.concat([x / 10, 1 - x / 10], axis=1)}

        @tf.function(input_signature=[spec])
        def int_classes(self, inputs):
            return {"classes": tf.tile(tf.constant([[0, 1]]), [tf.shape(x_of(inputs))[0], 1])}

        @tf.function(input_signature=[spec])
        def two_columns(self, inputs):
            x = x_of(inputs)
            return {"outputs": tf.concat([x, x], axis=1)}

        @tf.function(input_signature=[spec])
        def vector(self, inputs):
            return {"outputs": x_of(inputs)[:, 0] * 2}

    module = Labelled()
    base = tmp_path_factory.mktemp("labelled")
    signatures = {
        name: getattr(module, name) for name in ("classify", "int_classes", "two_columns", "vector")
    }
    tf.saved_model.save(module, str(base / "1"), signatures=signatures)
    return base


def _dataplane(models: dict[str, pathlib.Path], method_name_check: bool = False):
    entries = "".join(
        f'config {{ name: "{name}" base_path: "{base}" model_platform: "tensorflow" }} '
        for name, base in models.items()
    )
    config = text_format.Parse(
        f"model_config_list {{ {entries}}}", model_server_config_pb2.ModelServerConfig()
    )
    manager = ModelManager()
    manager.apply_config(config)
    return manager, DataPlane(manager, method_name_check=method_name_check)


@pytest.fixture(scope="module")
def plane(labelled):
    manager, dataplane = _dataplane({"labelled": labelled})
    yield dataplane
    manager.shutdown()


@pytest.fixture(scope="module")
def checking_plane(tf_serving_testdata):
    models = {
        "tf1": tf_serving_testdata / "saved_model_half_plus_two_cpu",
        "tf2": tf_serving_testdata / "saved_model_half_plus_two_tf2_cpu",
    }
    manager, dataplane = _dataplane(models, method_name_check=True)
    yield dataplane
    manager.shutdown()


def _fill(request, model: str, signature: str, xs=(2.0, 5.0)):
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    for x in xs:
        request.input.example_list.examples.add().features.feature["x"].float_list.value.append(x)
    return request


def _classify(model: str, signature: str, xs=(2.0, 5.0)):
    return _fill(classification_pb2.ClassificationRequest(), model, signature, xs)


def _regress(model: str, signature: str, xs=(2.0, 5.0)):
    return _fill(regression_pb2.RegressionRequest(), model, signature, xs)


def _message(call, request) -> tuple[Code, str]:
    with pytest.raises(ServingError) as e:
        call(request)
    return e.value.code, e.value.message


def test_classes_and_scores_give_labelled_scores(plane):
    response = plane.classify(_classify("labelled", "classify"))
    rows = [
        [(c.label, round(c.score, 6)) for c in row.classes]
        for row in response.result.classifications
    ]
    assert rows == [[("low", 0.2), ("high", 0.8)], [("low", 0.5), ("high", 0.5)]]


def test_classes_must_be_strings(plane):
    assert _message(plane.classify, _classify("labelled", "int_classes")) == (
        Code.INVALID_ARGUMENT,
        "Expected classes Tensor of DT_STRING. Got: DT_INT32",
    )


def test_regression_outputs_are_one_value_per_example(plane):
    response = plane.regress(_regress("labelled", "vector"))
    assert [r.value for r in response.result.regressions] == [4.0, 10.0]
    assert _message(plane.regress, _regress("labelled", "two_columns")) == (
        Code.INVALID_ARGUMENT,
        "Expected output Tensor shape to be either [batch_size] or [batch_size, 1] but got [2,2]",
    )


def test_multi_inference_with_labels_and_a_vector_regression(plane):
    request = inference_pb2.MultiInferenceRequest()
    for signature, method in (("classify", CLASSIFY), ("vector", REGRESS)):
        task = request.tasks.add(method_name=method)
        task.model_spec.name = "labelled"
        task.model_spec.signature_name = signature
    request.input.example_list.examples.add().features.feature["x"].float_list.value.append(3.0)
    first, second = plane.multi_inference(request).results
    [row] = first.classification_result.classifications
    assert [(c.label, round(c.score, 6)) for c in row.classes] == [("low", 0.3), ("high", 0.7)]
    assert [r.value for r in second.regression_result.regressions] == [6.0]


# ---- --enable_signature_method_name_check -------------------------------------------------
def test_with_the_check_tf1_classify_and_regress_signatures_still_serve(checking_plane):
    response = checking_plane.classify(_classify("tf1", "classify_x_to_y"))
    assert [[c.score for c in r.classes] for r in response.result.classifications] == [
        [3.0],
        [4.5],
    ]
    response = checking_plane.regress(_regress("tf1", "regress_x_to_y"))
    assert [r.value for r in response.result.regressions] == [3.0, 4.5]


def test_with_the_check_method_names_decide(checking_plane):
    code, message = _message(checking_plane.classify, _classify("tf1", "regress_x_to_y"))
    assert code == Code.INVALID_ARGUMENT
    assert "tensorflow/serving/classify" in message
    assert _message(checking_plane.regress, _regress("tf2", "regress_x_to_y")) == (
        Code.INVALID_ARGUMENT,
        "Expected regression signature method_name to be tensorflow/serving/regress. "
        "Was: tensorflow/serving/predict",
    )
    request = inference_pb2.MultiInferenceRequest()
    task = request.tasks.add(method_name=CLASSIFY)
    task.model_spec.name = "tf2"
    task.model_spec.signature_name = "classify_x_to_y"
    request.input.example_list.examples.add()
    assert _message(checking_plane.multi_inference, request) == (
        Code.INVALID_ARGUMENT,
        "Expected classification signature method_name to be tensorflow/serving/classify. "
        "Was: tensorflow/serving/predict",
    )


def test_with_the_check_predict_runs_predict_classify_and_regress_signatures(checking_plane):
    import numpy as np
    import tensorflow as tf

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "tf2"
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array([[4.0]], np.float32)))
    response = checking_plane.predict(request)
    assert tf.make_ndarray(response.outputs["y"]).tolist() == [[4.0]]
