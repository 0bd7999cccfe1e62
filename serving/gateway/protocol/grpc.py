"""The gRPC transport: the Recommendations service and the PredictionService/Predict pass-through.

A `ServingError` becomes the gRPC status of its code in `_observed` only (a model server's
refusal keeps the model server's code); the same validation as REST applies.
"""

from __future__ import annotations

import functools
import time

import grpc

from serving.errors import ServingError
from serving.gateway.cache import Source
from serving.gateway.dataplane import DataPlane
from serving.gateway.metrics import GatewayMetrics, error_kind
from serving.gateway.model_client import PREDICT_METHOD
from serving.gateway.passthrough import PredictPassThrough
from serving.gateway.validation import parse_feedback, parse_recommend
from serving.protos.generated import recommendations_pb2 as pb
from serving.protos.generated import recommendations_pb2_grpc as pb_grpc


def _observed(endpoint: str):
    """Wraps a handler: records metrics and aborts with the error's code on a `ServingError`."""

    def decorate(handler):
        @functools.wraps(handler)
        async def wrapper(self, request, context: grpc.aio.ServicerContext):
            start = time.perf_counter()
            metrics: GatewayMetrics = self._metrics
            try:
                response, cache = await handler(self, request, context)
            except ServingError as e:
                code = grpc.StatusCode[e.code.name]
                metrics.errors.labels(endpoint, error_kind(e)).inc()
                metrics.requests.labels(endpoint, code.name).inc()
                metrics.latency.labels(endpoint, Source.NONE.value).observe(
                    time.perf_counter() - start
                )
                await context.abort(code, e.message)
            metrics.requests.labels(endpoint, "OK").inc()
            metrics.latency.labels(endpoint, cache.value).observe(time.perf_counter() - start)
            return response

        return wrapper

    return decorate


class RecommendationsServicer(pb_grpc.RecommendationsServicer):
    """aiqleads.recommendations.v1.Recommendations on top of the data plane."""

    def __init__(self, dataplane: DataPlane, metrics: GatewayMetrics) -> None:
        self._dataplane, self._metrics = dataplane, metrics

    @_observed("grpc:Recommend")
    async def Recommend(self, request: pb.RecommendRequest, context):  # noqa: N802
        body = {"user_id": request.user_id, "k": request.k}
        for name in ("latitude", "longitude"):
            if request.HasField(name):
                body[name] = getattr(request, name)
        result = await self._dataplane.recommend(parse_recommend(body))
        response = pb.RecommendResponse(
            request_id=result.request_id,
            model_version=result.model_version,
            variant=result.variant,
            cached=result.cached,
            items=[pb.RecommendedLead(lead_id=lead, score=score) for lead, score in result.items],
        )
        return response, result.source

    @_observed("grpc:Feedback")
    async def Feedback(self, request: pb.FeedbackRequest, context):  # noqa: N802
        body = {
            "request_id": request.request_id,
            "user_id": request.user_id,
            "lead_id": request.lead_id,
            "event_type": request.event_type,
            "feedback_id": request.feedback_id or None,
        }
        receipt = await self._dataplane.feedback(parse_feedback(body))
        response = pb.FeedbackResponse(
            accepted=True, duplicate=receipt.duplicate, feedback_id=receipt.feedback_id
        )
        return response, Source.NONE


class PredictServicer:
    """`tensorflow.serving.PredictionService/Predict` on raw bytes, through the cache."""

    def __init__(self, passthrough: PredictPassThrough, metrics: GatewayMetrics) -> None:
        self._passthrough, self._metrics = passthrough, metrics

    @_observed("grpc:Predict")
    async def predict(self, request: bytes, context):
        loaded = await self._passthrough.predict(request)
        return loaded.value, loaded.source

    def handler(self) -> grpc.GenericRpcHandler:
        service, method = PREDICT_METHOD.strip("/").split("/")
        return grpc.method_handlers_generic_handler(
            service, {method: grpc.unary_unary_rpc_method_handler(self.predict)}
        )


def create_server(
    dataplane: DataPlane,
    passthrough: PredictPassThrough,
    metrics: GatewayMetrics,
    max_message_bytes: int,
) -> grpc.aio.Server:
    """A gRPC server with both services; the caller adds the port and starts it."""
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.so_reuseport", 0),
        ]
    )
    pb_grpc.add_RecommendationsServicer_to_server(
        RecommendationsServicer(dataplane, metrics), server
    )
    server.add_generic_rpc_handlers((PredictServicer(passthrough, metrics).handler(),))
    return server
