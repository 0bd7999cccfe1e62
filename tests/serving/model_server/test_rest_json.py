"""TF Serving's REST JSON formats: decoding request bodies and encoding outputs."""

from __future__ import annotations

import base64

import numpy as np
import pytest
import tensorflow as tf

from serving.errors import Code, ServingError
from serving.model_server.protocol import rest_json
from serving.model_server.servable import Signature


def _signature(**dtypes) -> Signature:
    keys = tuple(dtypes)
    return Signature("s", "tensorflow/serving/predict", keys, dtypes, ("y",), runner=None)


def test_row_values_for_a_one_input_signature():
    inputs = rest_json.row_inputs([1, 2.5], _signature(x=tf.float32))
    assert inputs["x"].dtype == np.float32 and inputs["x"].tolist() == [1.0, 2.5]


def test_row_objects_with_b64_and_text_strings():
    sig = _signature(user_id=tf.string, k=tf.int32)
    inputs = rest_json.row_inputs(
        [
            {"user_id": "ab", "k": 3},
            {"user_id": {"b64": base64.b64encode(b"\xff").decode()}, "k": 1},
        ],
        sig,
    )
    assert inputs["user_id"].tolist() == [b"ab", b"\xff"]
    assert inputs["k"].dtype == np.int32 and inputs["k"].tolist() == [3, 1]


@pytest.mark.parametrize(
    ("instances", "message"),
    [
        ([], "non-empty"),
        ([{"user_id": "a", "k": 1}, {"user_id": "b"}], "same keys"),
        ([{"user_id": "a", "k": 1, "z": 2}], "unknown inputs ['z']"),
        (["a"], "naming each input"),
        ([{"user_id": "a", "k": 1.5}], "cannot be read as a int32 tensor"),
        ([{"user_id": {"b64": "%%%"}, "k": 1}], "bad base64"),
    ],
)
def test_row_errors_are_invalid_argument(instances, message):
    with pytest.raises(ServingError) as e:
        rest_json.row_inputs(instances, _signature(user_id=tf.string, k=tf.int32))
    assert e.value.code == Code.INVALID_ARGUMENT
    assert message in e.value.message


def test_columnar_inputs():
    sig = _signature(x=tf.float32)
    assert rest_json.columnar_inputs([[1.0], [2.0]], sig)["x"].shape == (2, 1)
    assert rest_json.columnar_inputs({"x": [3.0]}, sig)["x"].tolist() == [3.0]


def test_outputs_row_and_columnar():
    outputs = {
        "scores": np.array([[0.1, 0.2]], np.float32),
        "ids": np.array([[b"a", b"\xff"]], dtype=object),
        "raw_bytes": np.array([b"z"], dtype=object),
    }
    assert rest_json.row_outputs(outputs) == [
        {"scores": [0.1, 0.2], "ids": ["a", {"b64": "/w=="}], "raw_bytes": {"b64": "eg=="}}
    ]
    assert rest_json.columnar_outputs({"y": np.array([2.5], np.float32)}) == [2.5]
    with pytest.raises(ServingError, match="inconsistent batch size"):
        rest_json.row_outputs({"a": np.zeros(2), "b": np.zeros(3)})


def test_examples_input_types_features_like_tf_serving():
    body = {"context": {"city": "nyc"}, "examples": [{"x": 2.0, "n": 3, "tags": ["a", "b"]}]}
    proto = rest_json.examples_input(body)
    example = proto.example_list_with_context.examples[0].features.feature
    assert list(example["x"].float_list.value) == [2.0]
    assert list(example["n"].int64_list.value) == [3]
    assert list(example["tags"].bytes_list.value) == [b"a", b"b"]
    context = proto.example_list_with_context.context.features.feature
    assert list(context["city"].bytes_list.value) == [b"nyc"]
    with pytest.raises(ServingError, match="all numbers or all strings"):
        rest_json.examples_input({"examples": [{"x": [1, "a"]}]})
