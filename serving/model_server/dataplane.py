"""The transport-agnostic data plane: predict, classify, regress, metadata and status.

Requests arrive as `tensorflow_serving.apis` protos (gRPC hands them over as they are; REST
converts JSON to the same protos or to numpy inputs). Failures are `ServingError`s carrying
TF Serving's status code and message; the transports map them once each.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    predict_pb2,
    regression_pb2,
)

from serving.errors import Code, ServingError, invalid
from serving.model_server import tensors
from serving.model_server.manager import ModelManager
from serving.model_server.servable import (
    CLASSIFY_METHOD,
    DEFAULT_SIGNATURE,
    REGRESS_METHOD,
    Servable,
)

SIGNATURE_DEF_FIELD = "signature_def"
MAX_EXAMPLES = 100_000
_STATE_NAMES = {10: "START", 20: "LOADING", 30: "AVAILABLE", 40: "UNLOADING", 50: "END"}


@dataclasses.dataclass(frozen=True)
class Spec:
    """What a request's `model_spec` asks for."""

    name: str
    version: int | None = None
    label: str | None = None
    signature_name: str = ""

    @classmethod
    def from_proto(cls, spec: model_pb2.ModelSpec) -> Spec:
        if not spec.name:
            raise invalid("Missing ModelSpec")
        which = spec.WhichOneof("version_choice")
        return cls(
            name=spec.name,
            version=spec.version.value if which == "version" else None,
            label=spec.version_label if which == "version_label" else None,
            signature_name=spec.signature_name,
        )


def _response_spec(out: model_pb2.ModelSpec, name: str, version: int, signature: str) -> None:
    out.name = name
    out.version.value = version
    out.signature_name = signature


class DataPlane:
    """Answers the TF Serving APIs from the models a `ModelManager` serves."""

    def __init__(self, manager: ModelManager, batcher=None) -> None:
        self.manager = manager
        self.batcher = batcher

    # ---- predict / classify / regress -----------------------------------------------------
    def predict_arrays(
        self, spec: Spec, inputs: dict, output_filter=()
    ) -> tuple[int, str, dict[str, np.ndarray]]:
        """(version, signature name, outputs) of a Predict.

        `inputs` is key -> numpy array, or a function of the `Signature` returning that
        (REST decodes JSON only once it knows the signature's input names and dtypes).
        """
        with self.manager.handle(spec.name, spec.version, spec.label) as servable:
            name, outputs = run_predict(
                servable, spec.signature_name, inputs, output_filter, self.batcher
            )
            return servable.version, name, outputs

    def predict(self, request: predict_pb2.PredictRequest) -> predict_pb2.PredictResponse:
        spec = Spec.from_proto(request.model_spec)
        with self.manager.handle(spec.name, spec.version, spec.label) as servable:
            return predict_on(servable, request, self.batcher)

    def classify(
        self, request: classification_pb2.ClassificationRequest
    ) -> classification_pb2.ClassificationResponse:
        spec = Spec.from_proto(request.model_spec)
        with self.manager.handle(spec.name, spec.version, spec.label) as servable:
            return classify_on(servable, request)

    def regress(
        self, request: regression_pb2.RegressionRequest
    ) -> regression_pb2.RegressionResponse:
        spec = Spec.from_proto(request.model_spec)
        with self.manager.handle(spec.name, spec.version, spec.label) as servable:
            return regress_on(servable, request)

    # ---- metadata / status ---------------------------------------------------------------
    def metadata(
        self, request: get_model_metadata_pb2.GetModelMetadataRequest
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        spec = Spec.from_proto(request.model_spec)
        fields = list(request.metadata_field)
        if not fields:
            raise invalid("GetModelMetadataRequest must specify at least one metadata_field")
        for field in fields:
            if field != SIGNATURE_DEF_FIELD:
                raise invalid(f"Metadata field {field} is not supported")
        with self.manager.handle(spec.name, spec.version, spec.label) as servable:
            response = get_model_metadata_pb2.GetModelMetadataResponse()
            response.model_spec.name = spec.name
            response.model_spec.version.value = servable.version
            response.metadata[SIGNATURE_DEF_FIELD].Pack(servable.signature_def_map())
            return response

    def status(
        self, request: get_model_status_pb2.GetModelStatusRequest
    ) -> get_model_status_pb2.GetModelStatusResponse:
        spec = Spec.from_proto(request.model_spec)
        version = self.manager.resolve_version(spec.name, spec.version, spec.label)
        response = get_model_status_pb2.GetModelStatusResponse()
        for v, state in self.manager.status(spec.name, version):
            entry = response.model_version_status.add()
            entry.version = v
            entry.state = state.state
            entry.status.error_code = int(state.error_code)
            entry.status.error_message = state.error_message
        return response


# ---- requests on one servable (the data plane's calls, and the load-time warm-up's) --------
def run_predict(
    servable: Servable, signature_name: str, inputs, output_filter=(), batcher=None
) -> tuple[str, dict[str, np.ndarray]]:
    """(signature name, outputs) of a Predict on `servable` (inputs as in `predict_arrays`)."""
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
    from tensorflow.core.example import example_pb2

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


def state_name(state: int) -> str:
    return _STATE_NAMES.get(state, "UNKNOWN")


def status_error(code: Code, message: str) -> ServingError:
    return ServingError(code, message)
