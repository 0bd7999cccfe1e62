"""Predict, Classify and Regress run on one servable: the data plane's calls and the warm-up's.

The caller has chosen the servable (the data plane through the `ModelManager`, the load-time
warm-up on the version it is loading), so a request's model spec only names a signature here.
Failures are `ServingError`s with TF Serving's status codes and messages.
"""

from __future__ import annotations

import numpy as np
from tensorflow.core.example import example_pb2
from tensorflow_serving.apis import classification_pb2, model_pb2, predict_pb2, regression_pb2

from serving.errors import invalid
from serving.model_server import tensors
from serving.model_server.servable import (
    CLASSIFY_METHOD,
    DEFAULT_SIGNATURE,
    REGRESS_METHOD,
    Servable,
)

MAX_EXAMPLES = 100_000


def _response_spec(out: model_pb2.ModelSpec, name: str, version: int, signature: str) -> None:
    out.name = name
    out.version.value = version
    out.signature_name = signature


def run_predict(
    servable: Servable, signature_name: str, inputs, output_filter=(), batcher=None
) -> tuple[str, dict[str, np.ndarray]]:
    """(signature name, outputs) of a Predict on `servable`.

    `inputs` is key -> numpy array, or a function of the `Signature` returning that (REST
    decodes JSON only once it knows the signature's input names and dtypes).
    """
    signature = servable.signature(signature_name)
    if callable(inputs):
        inputs = inputs(signature)
    wanted = list(output_filter)
    for key in wanted:
        if key not in signature.output_keys:
            raise invalid(
                f"output tensor alias not found in signature: {key} Outputs expected "
                f"to be in the set {{{','.join(signature.output_keys)}}}."
            )
    outputs = batcher.run(signature, inputs) if batcher is not None else signature.call(inputs)
    if wanted:
        outputs = {k: outputs[k] for k in dict.fromkeys(wanted)}
    return signature.name, outputs


def predict_on(
    servable: Servable, request: predict_pb2.PredictRequest, batcher=None
) -> predict_pb2.PredictResponse:
    """A `PredictResponse` for `request` run on `servable` (its model spec only names a
    signature here: the caller chose the servable)."""
    inputs = {key: tensors.from_proto(t, key) for key, t in request.inputs.items()}
    name, outputs = run_predict(
        servable, request.model_spec.signature_name, inputs, request.output_filter, batcher
    )
    response = predict_pb2.PredictResponse()
    _response_spec(response.model_spec, servable.name, servable.version, name)
    for key, value in outputs.items():
        response.outputs[key].CopyFrom(tensors.to_proto(value))
    return response


def _run_examples(servable: Servable, signature_name: str, input_proto, method: str, kind: str):
    examples = serialize_examples(input_proto)
    name = signature_name or DEFAULT_SIGNATURE
    signature = servable.signatures.get(name)
    if signature is None:
        raise invalid(f"No signature was found with the name: {name}")
    if signature.method_name != method:
        raise invalid(
            f"Expected {kind} signature method_name to be {method}. Was: {signature.method_name}"
        )
    if len(signature.input_keys) != 1:
        raise invalid(f"Expected one input Tensor, got {len(signature.input_keys)}")
    outputs = signature.call({signature.input_keys[0]: np.array(examples, dtype=object)})
    return name, outputs, len(examples)


def classify_on(
    servable: Servable, request: classification_pb2.ClassificationRequest
) -> classification_pb2.ClassificationResponse:
    """A `ClassificationResponse` for `request` run on `servable`."""
    name, outputs, n = _run_examples(
        servable, request.model_spec.signature_name, request.input, CLASSIFY_METHOD,
        "classification",
    )  # fmt: skip
    classes, scores = outputs.get("classes"), outputs.get("scores")
    if classes is None and scores is None:
        raise invalid("Expected classification signature outputs 'classes' or 'scores'")
    for name_, value in (("classes", classes), ("scores", scores)):
        if value is not None and (value.ndim != 2 or value.shape[0] != n):
            raise invalid(
                f"Expected {name_} Tensor of shape [batch_size num_classes] with "
                f"batch_size {n}; got shape {list(value.shape)}"
            )
    response = classification_pb2.ClassificationResponse()
    _response_spec(response.model_spec, servable.name, servable.version, name)
    width = (classes if classes is not None else scores).shape[1]
    for i in range(n):
        row = response.result.classifications.add()
        for j in range(width):
            c = row.classes.add()
            if classes is not None:
                c.label = (
                    classes[i, j].decode()
                    if isinstance(classes[i, j], bytes)
                    else str(classes[i, j])
                )
            if scores is not None:
                c.score = float(scores[i, j])
    return response


def regress_on(
    servable: Servable, request: regression_pb2.RegressionRequest
) -> regression_pb2.RegressionResponse:
    """A `RegressionResponse` for `request` run on `servable`."""
    name, outputs, n = _run_examples(
        servable, request.model_spec.signature_name, request.input, REGRESS_METHOD, "regression"
    )
    values = outputs.get("outputs")
    if values is None:
        raise invalid("No output Tensor named 'outputs' in the regression signature")
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1 or values.shape[0] != n:
        raise invalid(
            f"Expected output Tensor shape to be [batch_size] or [batch_size, 1] with "
            f"batch_size {n}; got {list(outputs['outputs'].shape)}"
        )
    response = regression_pb2.RegressionResponse()
    _response_spec(response.model_spec, servable.name, servable.version, name)
    for v in values.tolist():
        response.result.regressions.add().value = v
    return response


def serialize_examples(input_proto) -> list[bytes]:
    """Serialized tf.Examples of an `Input` (context features merged into each example)."""
    kind = input_proto.WhichOneof("kind")
    if kind == "example_list":
        examples = list(input_proto.example_list.examples)
        context = None
    elif kind == "example_list_with_context":
        examples = list(input_proto.example_list_with_context.examples)
        context = input_proto.example_list_with_context.context
    else:
        raise invalid("Input is empty")
    if not examples:
        raise invalid("Input is empty")
    if len(examples) > MAX_EXAMPLES:
        raise invalid(f"{len(examples)} examples; the limit is {MAX_EXAMPLES}")
    out = []
    for ex in examples:
        if context is not None:
            merged = example_pb2.Example()
            merged.CopyFrom(context)
            merged.MergeFrom(ex)
            ex = merged
        out.append(ex.SerializeToString())
    return out
