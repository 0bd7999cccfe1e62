"""The gRPC transport: PredictionService and ModelService on the official generated stubs.

`_answer` is the one place where `ServingError` codes become gRPC status codes.
"""

from __future__ import annotations

import concurrent.futures
import logging
import time
from collections.abc import Callable
from typing import NoReturn, TypeVar

import grpc
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)
from tensorflow_serving.config import model_server_config_pb2

from serving.errors import Code, ServingError
from serving.model_server.dataplane import DataPlane
from serving.model_server.flags import FlagError
from serving.model_server.metrics import ServerMetrics

log = logging.getLogger("aiqleads.model_server")
MAX_MESSAGE_BYTES = 2**31 - 1  # TF Serving accepts messages up to INT_MAX
_Request = TypeVar("_Request")
_Response = TypeVar("_Response")
Reload = Callable[[model_server_config_pb2.ModelServerConfig], None]


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, message: str) -> NoReturn:
    context.abort(code, message)  # raises, ending the call with that status
    raise AssertionError("grpc.ServicerContext.abort returned")


def _answer(
    metrics: ServerMetrics,
    api: str,
    model: str,
    fn: Callable[[_Request], _Response],
    request: _Request,
    context: grpc.ServicerContext,
) -> _Response:
    started = time.perf_counter()
    code = Code.OK
    try:
        return fn(request)
    except ServingError as e:
        code = e.code
        _abort(context, grpc.StatusCode[e.code.name], e.message)
    except Exception as e:  # unexpected: INTERNAL with the cause, never a hung call
        code = Code.INTERNAL
        log.exception("%s failed", api)
        _abort(context, grpc.StatusCode.INTERNAL, f"{type(e).__name__}: {e}")
    finally:
        metrics.observe(api, "grpc", model, code.name, time.perf_counter() - started)


# The generated servicer bases are untyped (Any to mypy); they answer UNIMPLEMENTED for any
# method a subclass does not define.
class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):  # type: ignore[misc]
    def __init__(self, dataplane: DataPlane, metrics: ServerMetrics) -> None:
        self._dp, self._m = dataplane, metrics

    def Predict(
        self, request: predict_pb2.PredictRequest, context: grpc.ServicerContext
    ) -> predict_pb2.PredictResponse:
        return _answer(
            self._m,
            "predict",
            self._dp.model_label(request.model_spec.name),
            self._dp.predict,
            request,
            context,
        )

    def Classify(
        self, request: classification_pb2.ClassificationRequest, context: grpc.ServicerContext
    ) -> classification_pb2.ClassificationResponse:
        return _answer(
            self._m,
            "classify",
            self._dp.model_label(request.model_spec.name),
            self._dp.classify,
            request,
            context,
        )

    def Regress(
        self, request: regression_pb2.RegressionRequest, context: grpc.ServicerContext
    ) -> regression_pb2.RegressionResponse:
        return _answer(
            self._m,
            "regress",
            self._dp.model_label(request.model_spec.name),
            self._dp.regress,
            request,
            context,
        )

    def MultiInference(
        self, request: inference_pb2.MultiInferenceRequest, context: grpc.ServicerContext
    ) -> inference_pb2.MultiInferenceResponse:
        model = self._dp.model_label(request.tasks[0].model_spec.name if request.tasks else "")
        return _answer(
            self._m, "multi_inference", model, self._dp.multi_inference, request, context
        )

    def GetModelMetadata(
        self,
        request: get_model_metadata_pb2.GetModelMetadataRequest,
        context: grpc.ServicerContext,
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        return _answer(
            self._m,
            "metadata",
            self._dp.model_label(request.model_spec.name),
            self._dp.metadata,
            request,
            context,
        )


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):  # type: ignore[misc]
    def __init__(self, dataplane: DataPlane, metrics: ServerMetrics, reload: Reload) -> None:
        self._dp, self._m, self._reload = dataplane, metrics, reload

    def GetModelStatus(
        self, request: get_model_status_pb2.GetModelStatusRequest, context: grpc.ServicerContext
    ) -> get_model_status_pb2.GetModelStatusResponse:
        return _answer(
            self._m,
            "status",
            self._dp.model_label(request.model_spec.name),
            self._dp.status,
            request,
            context,
        )

    def HandleReloadConfigRequest(
        self, request: model_management_pb2.ReloadConfigRequest, context: grpc.ServicerContext
    ) -> model_management_pb2.ReloadConfigResponse:
        def reload(
            req: model_management_pb2.ReloadConfigRequest,
        ) -> model_management_pb2.ReloadConfigResponse:
            self._reload(req.config)
            return model_management_pb2.ReloadConfigResponse()  # status OK by default

        return _answer(self._m, "reload", "", reload, request, context)


def channel_options(arguments: str) -> list[tuple[str, object]]:
    """`--grpc_channel_arguments` ("key=value,...") as gRPC server options."""
    options: list[tuple[str, object]] = [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ]
    for item in filter(None, (a.strip() for a in arguments.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise FlagError(f"--grpc_channel_arguments: {item!r} is not key=value")
        options.append((key, int(value) if value.lstrip("-").isdigit() else value))
    return options


def build_server(
    dataplane: DataPlane,
    metrics: ServerMetrics,
    reload: Reload,
    addresses: list[str],
    channel_arguments: str = "",
    workers: int = 32,
) -> tuple[grpc.Server, list[int]]:
    """A started-ready (not started) gRPC server bound to `addresses`; returns bound ports."""
    server = grpc.server(
        concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="grpc"),
        options=channel_options(channel_arguments),
    )
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionServicer(dataplane, metrics), server
    )
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(
        ModelServicer(dataplane, metrics, reload), server
    )
    ports: list[int] = []
    for address in addresses:
        port = server.add_insecure_port(address)
        if port == 0 and not address.startswith("unix:"):
            raise ServingError(Code.UNAVAILABLE, f"cannot bind gRPC to {address}")
        ports.append(port)
    return server, ports
