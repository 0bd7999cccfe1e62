"""An in-test TF Serving PredictionService/ModelService stub running real SavedModels.

The gateway tests run against the real `aiqleads-model-server`; this stub is kept for the few
that need what a real server does not offer: a Predict that can be slowed down on purpose
(`predict_delay`, so a call is still in flight when the concurrent ones arrive) and a server
each test can stop on its own. It serves `<base>/<version>/` SavedModels through the official
`tensorflow_serving.apis` stubs and counts Predict calls.
"""

from __future__ import annotations

import pathlib
import threading
from concurrent import futures

import grpc
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)


class FixtureModelServer(
    prediction_service_pb2_grpc.PredictionServiceServicer,
    model_service_pb2_grpc.ModelServiceServicer,
):
    def __init__(self, model_name: str, base_path: pathlib.Path) -> None:
        self.model_name = model_name
        self.base_path = pathlib.Path(base_path)
        self.labels: dict[str, int] = {}
        self.predict_calls = 0
        self.predict_delay = 0.0
        self._lock = threading.Lock()
        self._models: dict[int, object] = {}
        self._server: grpc.Server | None = None
        self.port = 0

    # -- loading ------------------------------------------------------------------------------
    def versions(self) -> list[int]:
        return sorted(int(p.name) for p in self.base_path.iterdir() if p.name.isdigit())

    def _model(self, version: int):
        with self._lock:
            if version not in self._models:
                self._models[version] = tf.saved_model.load(str(self.base_path / str(version)))
            return self._models[version]

    def _resolve(self, spec, context) -> int:
        if spec.name != self.model_name:
            context.abort(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: {spec.name}")
        available = self.versions()
        if spec.HasField("version"):
            if spec.version.value not in available:
                context.abort(grpc.StatusCode.NOT_FOUND, f"version {spec.version.value} not found")
            return spec.version.value
        if spec.version_label:
            if spec.version_label not in self.labels:
                context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"Unrecognized servable version label: {spec.version_label}",
                )
            return self.labels[spec.version_label]
        if not available:
            context.abort(grpc.StatusCode.UNAVAILABLE, "no version loaded")
        return available[-1]

    # -- PredictionService ----------------------------------------------------------------------
    def Predict(self, request, context):  # noqa: N802
        version = self._resolve(request.model_spec, context)
        with self._lock:
            self.predict_calls += 1
        if self.predict_delay:
            threading.Event().wait(self.predict_delay)
        signature_name = request.model_spec.signature_name or "serving_default"
        fn = self._model(version).signatures[signature_name]
        try:
            inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
            outputs = fn(**inputs)
        except (TypeError, ValueError, tf.errors.InvalidArgumentError) as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e).splitlines()[0])
        response = predict_pb2.PredictResponse()
        response.model_spec.name = self.model_name
        response.model_spec.version.value = version
        response.model_spec.signature_name = signature_name
        for name, tensor in outputs.items():
            response.outputs[name].CopyFrom(tf.make_tensor_proto(tensor.numpy()))
        return response

    def GetModelMetadata(self, request, context):  # noqa: N802
        version = self._resolve(request.model_spec, context)
        saved = saved_model_pb2.SavedModel()
        saved.ParseFromString((self.base_path / str(version) / "saved_model.pb").read_bytes())
        signatures = get_model_metadata_pb2.SignatureDefMap()
        for name, sig in saved.meta_graphs[0].signature_def.items():
            signatures.signature_def[name].CopyFrom(sig)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = self.model_name
        response.model_spec.version.value = version
        response.metadata["signature_def"].Pack(signatures)
        return response

    # -- ModelService -----------------------------------------------------------------------------
    def GetModelStatus(self, request, context):  # noqa: N802
        if request.model_spec.name != self.model_name:
            context.abort(grpc.StatusCode.NOT_FOUND, "model not found")
        response = get_model_status_pb2.GetModelStatusResponse()
        for version in self.versions():
            status = response.model_version_status.add()
            status.version = version
            status.state = get_model_status_pb2.ModelVersionStatus.AVAILABLE
        return response

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self, port: int = 0) -> int:
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(self, self._server)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(self, self._server)
        self.port = self._server.add_insecure_port(f"127.0.0.1:{port}")
        self._server.start()
        return self.port

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=None).wait()
            self._server = None
