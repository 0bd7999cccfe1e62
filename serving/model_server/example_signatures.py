"""Classify and Regress signatures: which ones qualify, and how their outputs become results.

The rules are TF Serving's (`servables/tensorflow/classifier.cc` and `regressor.cc`). A
signature qualifies by its shape, not by its method name: one input keyed `inputs` (a string
vector of serialized tf.Examples); for classification one or two outputs, among them `classes`
(strings) and/or `scores` (floats), each [batch, classes]; for regression one output keyed
`outputs`, floats, [batch] or [batch, 1]. So a TF2 export (`tf.saved_model.save`), whose
signatures all carry the predict method name, serves Classify and Regress when its signature
has that shape. Only with `--enable_signature_method_name_check` (off by default, as in TF
Serving) must the method name also be the classify or regress one. Every failure here is
INVALID_ARGUMENT with TF Serving's message.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy.typing as npt
import tensorflow as tf
from google.protobuf import text_format
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import classification_pb2, regression_pb2

from serving.errors import ServingError, invalid
from serving.model_server.servable import CLASSIFY_METHOD, DEFAULT_SIGNATURE, REGRESS_METHOD

EXAMPLES_INPUT = "inputs"  # the one input of both kinds
CLASSES_OUTPUT = "classes"
SCORES_OUTPUT = "scores"
REGRESSION_OUTPUT = "outputs"
KIND = {CLASSIFY_METHOD: "classification", REGRESS_METHOD: "regression"}
_WANTED_OUTPUTS = {
    CLASSIFY_METHOD: (CLASSES_OUTPUT, SCORES_OUTPUT),
    REGRESS_METHOD: (REGRESSION_OUTPUT,),
}


@dataclasses.dataclass(frozen=True)
class ExampleTask:
    """A signature checked for Classify or Regress: the tensors one Session step feeds and
    fetches for it."""

    signature_name: str
    method: str  # CLASSIFY_METHOD or REGRESS_METHOD
    input_tensor: str
    input_dtype: int  # types_pb2.DataType of the examples input
    outputs: Mapping[str, str]  # output key ("classes", "scores" or "outputs") -> tensor name


def signature_key(name: str) -> str:
    """The signature a request names ('' means `serving_default`)."""
    return name or DEFAULT_SIGNATURE


def _described(signature_def: meta_graph_pb2.SignatureDef) -> str:
    return str(text_format.MessageToString(signature_def))


def example_task(
    method: str,
    name: str,
    signature_def: meta_graph_pb2.SignatureDef,
    method_name_check: bool = False,
) -> ExampleTask:
    """`signature_def` (signature `name`) checked for `method`; INVALID_ARGUMENT if it does not
    qualify (see the module docstring)."""
    kind = KIND[method]
    if method_name_check and signature_def.method_name != method:
        raise invalid(
            f"Expected {kind} signature method_name to be {method}. "
            f"Was: {signature_def.method_name}"
        )
    if len(signature_def.inputs) != 1:
        raise invalid("Expected one input Tensor.")
    n_outputs = len(signature_def.outputs)
    if method == CLASSIFY_METHOD and n_outputs not in (1, 2):
        raise invalid(f"Expected one or two output Tensors, found {n_outputs}")
    if method == REGRESS_METHOD and n_outputs != 1:
        raise invalid("Expected one output Tensor.")
    if EXAMPLES_INPUT not in signature_def.inputs:
        raise invalid(f"No {kind} inputs found in SignatureDef: {_described(signature_def)}")
    outputs = {
        key: signature_def.outputs[key].name
        for key in _WANTED_OUTPUTS[method]
        if key in signature_def.outputs
    }
    if not outputs:
        if method == CLASSIFY_METHOD:
            raise invalid(
                "Expected classification signature outputs to contain at least one of "
                f'"{CLASSES_OUTPUT}" or "{SCORES_OUTPUT}". Signature was: '
                f"{_described(signature_def)}"
            )
        raise invalid(f"No regression outputs found in SignatureDef: {_described(signature_def)}")
    examples_input = signature_def.inputs[EXAMPLES_INPUT]
    return ExampleTask(name, method, examples_input.name, examples_input.dtype, outputs)


def check_examples_input(task: ExampleTask) -> None:
    """The Session feed rule: the examples are strings, so the input must take strings."""
    if task.input_dtype != types_pb2.DT_STRING:
        wanted = types_pb2.DataType.Name(task.input_dtype).removeprefix("DT_").lower()
        raise invalid(
            f"Expects arg[0] ({EXAMPLES_INPUT}) to be {wanted} but string is provided "
            f"(signature {task.signature_name})"
        )


def _shape(array: npt.NDArray[Any]) -> str:
    return "[" + ",".join(str(d) for d in array.shape) + "]"


def _dtype_name(array: npt.NDArray[Any]) -> str:
    if array.dtype.kind in "OSU":
        return "DT_STRING"
    try:
        return str(types_pb2.DataType.Name(tf.as_dtype(array.dtype).as_datatype_enum))
    except TypeError:
        return str(array.dtype)


def _checked_matrix(
    key: str, array: npt.NDArray[Any] | None, want: str, n: int
) -> npt.NDArray[Any] | None:
    if array is None:
        return None
    if array.ndim != 2:
        raise invalid(f"Expected Tensor shape: [batch_size num_classes] but got {_shape(array)}")
    if _dtype_name(array) != want:
        raise invalid(f"Expected {key} Tensor of {want}. Got: {_dtype_name(array)}")
    if array.shape[0] != n:
        raise invalid(f"Expected {key} output batch size of {n}. Got: {array.shape[0]}")
    return array


def classification_result(
    n: int,
    outputs: Mapping[str, npt.NDArray[Any]],
    result: classification_pb2.ClassificationResult,
) -> None:
    """Fill `result` from the `classes` and/or `scores` outputs of `n` examples."""
    classes = _checked_matrix(CLASSES_OUTPUT, outputs.get(CLASSES_OUTPUT), "DT_STRING", n)
    scores = _checked_matrix(SCORES_OUTPUT, outputs.get(SCORES_OUTPUT), "DT_FLOAT", n)
    if classes is not None and scores is not None and classes.shape[1] != scores.shape[1]:
        raise invalid(
            "Tensors class and score should match in dim_size(1). Got "
            f"{classes.shape[1]} vs. {scores.shape[1]}"
        )
    present = classes if classes is not None else scores
    width = 0 if present is None else present.shape[1]
    labels = None if classes is None else [[_label(v) for v in row] for row in classes]
    values = None if scores is None else scores.tolist()
    for i in range(n):
        row = result.classifications.add()
        for j in range(width):
            entry = row.classes.add()
            if labels is not None:
                entry.label = labels[i][j]
            if values is not None:
                entry.score = values[i][j]


def _label(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def regression_result(
    n: int, outputs: Mapping[str, npt.NDArray[Any]], result: regression_pb2.RegressionResult
) -> None:
    """Fill `result` from the `outputs` output of `n` examples."""
    values = outputs[REGRESSION_OUTPUT]
    if not (values.ndim == 1 or (values.ndim == 2 and values.shape[1] == 1)):
        raise invalid(
            "Expected output Tensor shape to be either [batch_size] or [batch_size, 1] but "
            f"got {_shape(values)}"
        )
    if values.shape[0] != n:
        raise invalid(
            f"Input batch size did not match output batch size: {n} vs. {values.shape[0]}"
        )
    if _dtype_name(values) != "DT_FLOAT":
        raise invalid(f"Expected output Tensor of DT_FLOAT.  Got: {_dtype_name(values)}")
    for value in values.reshape(-1).tolist():
        result.regressions.add().value = value


def signature_not_found(name: str) -> ServingError:
    """Classify's and Regress's error for a signature the model does not have."""
    return invalid(f"No signature was found with the name: {name}")
