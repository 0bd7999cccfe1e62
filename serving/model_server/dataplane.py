"""The transport-agnostic data plane: predict, classify, regress, multi-inference, metadata and
status.

Requests arrive as `tensorflow_serving.apis` protos (gRPC hands them over as they are; REST
converts JSON to the same protos or to numpy inputs). Failures are `ServingError`s carrying
TF Serving's status code and message; the transports map them once each.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable

from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_pb2,
    predict_pb2,
    regression_pb2,
)

from serving.errors import invalid
from serving.model_server.batching import Batcher, Inputs, Outputs
from serving.model_server.inference import (
    classify_on,
    multi_inference_on,
    predict_on,
    regress_on,
    run_predict,
)
from serving.model_server.manager import ModelManager, ServableHandle
from serving.model_server.servable import Signature

SIGNATURE_DEF_FIELD = "signature_def"
MULTI_INFERENCE_NO_MODEL = "ModelSpec has no name specified."  # TF Serving's, no task or name


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


UNKNOWN_MODEL = "unknown"  # the metric label of a model name the server does not serve


class DataPlane:
    """Answers the TF Serving APIs from the models a `ModelManager` serves."""

    def __init__(
        self,
        manager: ModelManager,
        batcher: Batcher | None = None,
        method_name_check: bool = False,
    ) -> None:
        self.manager = manager
        self.batcher = batcher
        self.method_name_check = method_name_check  # --enable_signature_method_name_check

    def model_label(self, name: str) -> str:
        """``name`` as a metric label: a model the server knows, else `UNKNOWN_MODEL`, so a
        client inventing names cannot add label values without bound."""
        return name if self.manager.knows(name) else UNKNOWN_MODEL

    # ---- predict / classify / regress -----------------------------------------------------
    def _handle(self, spec: Spec) -> ServableHandle:
        """The servable a request's model spec names (a context manager; NOT_FOUND if absent)."""
        return self.manager.handle(spec.name, spec.version, spec.label)

    def predict_arrays(
        self,
        spec: Spec,
        inputs: Inputs | Callable[[Signature], Inputs],
        output_filter: Iterable[str] = (),
    ) -> tuple[int, str, Outputs]:
        """(version, signature name, outputs) of a Predict.

        `inputs` is key -> numpy array, or a function of the `Signature` returning that
        (REST decodes JSON only once it knows the signature's input names and dtypes).
        """
        with self._handle(spec) as servable:
            name, outputs = run_predict(
                servable,
                spec.signature_name,
                inputs,
                output_filter,
                self.batcher,
                self.method_name_check,
            )
            return servable.version, name, outputs

    def predict(self, request: predict_pb2.PredictRequest) -> predict_pb2.PredictResponse:
        with self._handle(Spec.from_proto(request.model_spec)) as servable:
            return predict_on(servable, request, self.batcher, self.method_name_check)

    def classify(
        self, request: classification_pb2.ClassificationRequest
    ) -> classification_pb2.ClassificationResponse:
        with self._handle(Spec.from_proto(request.model_spec)) as servable:
            return classify_on(servable, request, self.method_name_check)

    def regress(
        self, request: regression_pb2.RegressionRequest
    ) -> regression_pb2.RegressionResponse:
        with self._handle(Spec.from_proto(request.model_spec)) as servable:
            return regress_on(servable, request, self.method_name_check)

    def multi_inference(
        self, request: inference_pb2.MultiInferenceRequest
    ) -> inference_pb2.MultiInferenceResponse:
        """The first task's model spec chooses the version, as in TF Serving; every task must
        name that model (`inference.multi_inference_on` checks the tasks)."""
        first = request.tasks[0].model_spec if request.tasks else model_pb2.ModelSpec()
        if not first.name:
            raise invalid(MULTI_INFERENCE_NO_MODEL)
        spec = Spec.from_proto(first)
        with self._handle(spec) as servable:
            return multi_inference_on(servable, request, self.method_name_check)

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
        with self._handle(spec) as servable:
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
