"""The gRPC transport: PredictionService and ModelService on the official generated stubs.

`_answer` is the one place where `ServingError` codes become gRPC status codes.
"""

from __future__ import annotations

import concurrent.futures
import logging
import time
from collections.abc import Callable
from functools import partial
from typing import Any, NoReturn, Protocol, TypeVar

import grpc
from tensorflow_serving.apis import (
    inference_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    prediction_service_pb2_grpc,
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


class _Servicer(Protocol):
    _dp: DataPlane
    _m: ServerMetrics


class _ModelSpecRequest(Protocol):
    model_spec: Any  # a tensorflow.serving.ModelSpec (the generated protos are untyped)


_SpecRequest = TypeVar("_SpecRequest", bound=_ModelSpecRequest)


def _rpc(
    api: str, method: Callable[[DataPlane, _SpecRequest], _Response]
) -> Callable[[_Servicer, _SpecRequest, grpc.ServicerContext], _Response]:
    """An RPC the data plane's ``method`` answers, counted as ``api`` for the model its
    request's ``model_spec`` names."""

    def rpc(self: _Servicer, request: _SpecRequest, context: grpc.ServicerContext) -> _Response:
        model = self._dp.model_label(request.model_spec.name)
        return _answer(self._m, api, model, partial(method, self._dp), request, context)

    return rpc


# The generated servicer bases are untyped (Any to mypy); they answer UNIMPLEMENTED for any
# method a subclass does not define.
class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):  # type: ignore[misc]
    def __init__(self, dataplane: DataPlane, metrics: ServerMetrics) -> None:
        self._dp, self._m = dataplane, metrics

    Predict = _rpc("predict", DataPlane.predict)
    Classify = _rpc("classify", DataPlane.classify)
    Regress = _rpc("regress", DataPlane.regress)
    GetModelMetadata = _rpc("metadata", DataPlane.metadata)

    def MultiInference(
        self, request: inference_pb2.MultiInferenceRequest, context: grpc.ServicerContext
    ) -> inference_pb2.MultiInferenceResponse:
        model = self._dp.model_label(request.tasks[0].model_spec.name if request.tasks else "")
        return _answer(
            self._m, "multi_inference", model, self._dp.multi_inference, request, context
        )


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):  # type: ignore[misc]
    def __init__(self, dataplane: DataPlane, metrics: ServerMetrics, reload: Reload) -> None:
        self._dp, self._m, self._reload = dataplane, metrics, reload

    GetModelStatus = _rpc("status", DataPlane.status)

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
