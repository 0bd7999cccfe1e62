"""The gRPC transport: the Recommendations service and the PredictionService/Predict pass-through.

A `ServingError` becomes the gRPC status of its code in `_observed` only (a model server's
refusal keeps the model server's code); the same validation as REST applies.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import NoReturn, Protocol, TypeAlias, TypeVar

import grpc

from serving import auth
from serving.errors import Code, ServingError
from serving.gateway import access
from serving.gateway.cache import Source
from serving.gateway.dataplane import DataPlane
from serving.gateway.metrics import GatewayMetrics, error_kind
from serving.gateway.model_client import PREDICT_METHOD
from serving.gateway.passthrough import PredictPassThrough
from serving.gateway.validation import parse_feedback, parse_recommend
from serving.protos.generated import recommendations_pb2 as pb
from serving.protos.generated import recommendations_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)


def _metadata(context: _Context, key: str) -> str | None:
    for name, value in context.invocation_metadata() or ():
        if name == key:
            return value if isinstance(value, str) else value.decode()
    return None


class _Servicer(Protocol):
    _metrics: GatewayMetrics


_S = TypeVar("_S", bound=_Servicer)
_Request = TypeVar("_Request")
_Response = TypeVar("_Response")
_Context: TypeAlias = grpc.aio.ServicerContext
# A handler answers (response, cache source); `_observed` makes it a servicer method.
_Handler: TypeAlias = Callable[[_S, _Request, _Context], Awaitable[tuple[_Response, Source]]]
_Method: TypeAlias = Callable[[_S, _Request, _Context], Awaitable[_Response]]


async def _abort(context: _Context, code: grpc.StatusCode, message: str) -> NoReturn:
    await context.abort(code, message)  # raises, ending the call with that status
    raise AssertionError("grpc.aio.ServicerContext.abort returned")


def _observed(
    endpoint: str,
) -> Callable[[_Handler[_S, _Request, _Response]], _Method[_S, _Request, _Response]]:
    """Wraps a handler: records metrics and aborts with the error's code on a `ServingError`."""

    def decorate(
        handler: _Handler[_S, _Request, _Response],
    ) -> _Method[_S, _Request, _Response]:
        @functools.wraps(handler)
        async def wrapper(self: _S, request: _Request, context: _Context) -> _Response:
            start = time.perf_counter()
            metrics: GatewayMetrics = self._metrics
            try:
                response, cache = await handler(self, request, context)
            except Exception as e:
                if not isinstance(e, ServingError):  # the catch-all: INTERNAL, counted, logged
                    log.exception("%s failed", endpoint)
                    e = ServingError(
                        Code.INTERNAL, f"internal error ({type(e).__name__}); it is logged"
                    )
                code = grpc.StatusCode[e.code.name]
                metrics.errors.labels(endpoint, error_kind(e)).inc()
                metrics.requests.labels(endpoint, code.name).inc()
                metrics.latency.labels(endpoint, Source.NONE.value).observe(
                    time.perf_counter() - start
                )
                await _abort(context, code, e.message)
            metrics.requests.labels(endpoint, "OK").inc()
            metrics.latency.labels(endpoint, cache.value).observe(time.perf_counter() - start)
            return response

        return wrapper

    return decorate


# The generated servicer base is untyped (Any to mypy); it answers UNIMPLEMENTED for any method
# a subclass does not define.
class RecommendationsServicer(pb_grpc.RecommendationsServicer):  # type: ignore[misc]
    """aiqleads.recommendations.v1.Recommendations on top of the data plane."""

    def __init__(
        self, dataplane: DataPlane, metrics: GatewayMetrics, require_claims: bool = False
    ) -> None:
        self._dataplane, self._metrics = dataplane, metrics
        self._require_claims = require_claims

    def _authorize(self, context: _Context, user_id: str) -> None:
        if self._require_claims:
            access.authorize(_metadata(context, auth.PAYLOAD_HEADER), user_id)

    @_observed("grpc:Recommend")
    async def Recommend(  # noqa: N802
        self, request: pb.RecommendRequest, context: _Context
    ) -> tuple[pb.RecommendResponse, Source]:
        body: dict[str, object] = {"user_id": request.user_id, "k": request.k}
        for name in ("latitude", "longitude"):
            if request.HasField(name):
                body[name] = getattr(request, name)
        parsed = parse_recommend(body)
        self._authorize(context, parsed.user_id)
        result = await self._dataplane.recommend(parsed)
        response = pb.RecommendResponse(
            request_id=result.request_id,
            model_version=result.model_version,
            variant=result.variant,
            cached=result.cached,
            items=[pb.RecommendedLead(lead_id=lead, score=score) for lead, score in result.items],
        )
        return response, result.source

    @_observed("grpc:Feedback")
    async def Feedback(  # noqa: N802
        self, request: pb.FeedbackRequest, context: _Context
    ) -> tuple[pb.FeedbackResponse, Source]:
        body = {
            "request_id": request.request_id,
            "user_id": request.user_id,
            "lead_id": request.lead_id,
            "event_type": request.event_type,
            "feedback_id": request.feedback_id or None,
        }
        parsed = parse_feedback(body)
        self._authorize(context, parsed.user_id)
        receipt = await self._dataplane.feedback(parsed)
        response = pb.FeedbackResponse(
            accepted=True, duplicate=receipt.duplicate, feedback_id=receipt.feedback_id
        )
        return response, Source.NONE


class PredictServicer:
    """`tensorflow.serving.PredictionService/Predict` on raw bytes, through the cache."""

    def __init__(self, passthrough: PredictPassThrough, metrics: GatewayMetrics) -> None:
        self._passthrough, self._metrics = passthrough, metrics

    @_observed("grpc:Predict")
    async def predict(self, request: bytes, context: _Context) -> tuple[bytes, Source]:
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
    require_claims: bool = False,
) -> grpc.aio.Server:
    """A gRPC server with both services; the caller adds the port and starts it."""
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.so_reuseport", 0),
        ]
    )
    pb_grpc.add_RecommendationsServicer_to_server(
        RecommendationsServicer(dataplane, metrics, require_claims), server
    )
    server.add_generic_rpc_handlers((PredictServicer(passthrough, metrics).handler(),))
    return server
