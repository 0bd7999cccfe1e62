"""The gRPC transport: PredictionService and ModelService on the official generated stubs.

`_answer` is the one place where `ServingError` codes become gRPC status codes.
"""

from __future__ import annotations

import concurrent.futures
import logging
import time
from collections.abc import Callable

import grpc
from tensorflow_serving.apis import (
    inference_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    prediction_service_pb2_grpc,
)

from serving.errors import Code, ServingError
from serving.model_server.dataplane import DataPlane
from serving.model_server.flags import FlagError
from serving.model_server.metrics import ServerMetrics

log = logging.getLogger("aiqleads.model_server")
MAX_MESSAGE_BYTES = 2**31 - 1  # TF Serving accepts messages up to INT_MAX


def _answer(metrics: ServerMetrics, api: str, model: str, fn: Callable, request, context):
    started = time.perf_counter()
    code = Code.OK
    try:
        return fn(request)
    except ServingError as e:
        code = e.code
        context.abort(grpc.StatusCode[e.code.name], e.message)
    except Exception as e:  # unexpected: INTERNAL with the cause, never a hung call
        code = Code.INTERNAL
        log.exception("%s failed", api)
        context.abort(grpc.StatusCode.INTERNAL, f"{type(e).__name__}: {e}")
    finally:
        metrics.observe(api, "grpc", model, code.name, time.perf_counter() - started)


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, dataplane: DataPlane, metrics: ServerMetrics) -> None:
        self._dp, self._m = dataplane, metrics

    def Predict(self, request, context):
        return _answer(
            self._m, "predict", request.model_spec.name, self._dp.predict, request, context
        )

    def Classify(self, request, context):
        return _answer(
            self._m, "classify", request.model_spec.name, self._dp.classify, request, context
        )

    def Regress(self, request, context):
        return _answer(
            self._m, "regress", request.model_spec.name, self._dp.regress, request, context
        )

    def MultiInference(
        self, request: inference_pb2.MultiInferenceRequest, context: grpc.ServicerContext
    ) -> inference_pb2.MultiInferenceResponse:
        model = request.tasks[0].model_spec.name if request.tasks else ""
        response: inference_pb2.MultiInferenceResponse = _answer(
            self._m, "multi_inference", model, self._dp.multi_inference, request, context
        )
        return response

    def GetModelMetadata(self, request, context):
        return _answer(
            self._m, "metadata", request.model_spec.name, self._dp.metadata, request, context
        )


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, dataplane: DataPlane, metrics: ServerMetrics, reload: Callable) -> None:
        self._dp, self._m, self._reload = dataplane, metrics, reload

    def GetModelStatus(self, request, context):
        return _answer(
            self._m, "status", request.model_spec.name, self._dp.status, request, context
        )

    def HandleReloadConfigRequest(self, request, context):
        def reload(req):
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
    reload: Callable,
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
    ports = []
    for address in addresses:
        port = server.add_insecure_port(address)
        if port == 0 and not address.startswith("unix:"):
            raise ServingError(Code.UNAVAILABLE, f"cannot bind gRPC to {address}")
        ports.append(port)
    return server, ports
