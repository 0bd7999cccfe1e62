"""The REST transport (aiohttp): routes, JSON decoding, and the one error-to-status mapping."""

from __future__ import annotations

import json
import time

import orjson
from aiohttp import web

from serving.gateway.cache import RedisCache
from serving.gateway.errors import (
    InvalidRequestError,
    ModelRejectedError,
    ModelUnavailableError,
    NotFoundError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
)
from serving.gateway.metrics import GatewayMetrics
from serving.gateway.passthrough import PredictPassThrough
from serving.gateway.service import RecommendationService
from serving.gateway.validation import parse_feedback, parse_recommend

_STATUS = (  # most specific first
    (PayloadTooLargeError, 413, "too_large"),
    (UnsupportedMediaTypeError, 415, "media_type"),
    (InvalidRequestError, 400, "invalid"),
    (NotFoundError, 404, "not_found"),
    (ModelRejectedError, 400, "rejected"),
    (ModelUnavailableError, 503, "unavailable"),
)
_SERVICE = web.AppKey("service", RecommendationService)
_PASSTHROUGH = web.AppKey("passthrough", PredictPassThrough)
_METRICS = web.AppKey("metrics", GatewayMetrics)
_MAX_BODY = web.AppKey("max_body", int)
_CACHE = web.AppKey("cache", RedisCache)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _json_body(request: web.Request) -> object:
    limit = request.app[_MAX_BODY]
    if request.content_type != "application/json":
        raise UnsupportedMediaTypeError(
            f"send a JSON body with Content-Type: application/json (got {request.content_type!r})"
        )
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLargeError(
            f"the body has {request.content_length} bytes; the limit is {limit}"
        )
    try:
        raw = await request.read()  # aiohttp enforces client_max_size while reading
    except web.HTTPRequestEntityTooLarge as e:
        raise PayloadTooLargeError(f"the body is over the limit; the limit is {limit}") from e
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InvalidRequestError(f"the body is not valid JSON: {e}") from e


def _endpoint(request: web.Request) -> str:
    route = request.match_info.route.resource
    return route.canonical if route is not None else "unmatched"


@web.middleware
async def _errors_and_metrics(request: web.Request, handler) -> web.StreamResponse:
    """Maps domain errors to statuses (the only place) and records every request."""
    metrics = request.app[_METRICS]
    endpoint = _endpoint(request)
    start = time.perf_counter()
    cache = "none"
    try:
        response = await handler(request)
        cache = response.headers.get("X-Cache", "none").lower()
    except web.HTTPException as e:
        response = _error(e.status, e.reason if e.status != 404 else "no such endpoint")
    except tuple(cls for cls, _, _ in _STATUS) as e:
        status, kind = next((s, k) for cls, s, k in _STATUS if isinstance(e, cls))
        metrics.errors.labels(endpoint, kind).inc()
        response = _error(status, str(e))
    metrics.requests.labels(endpoint, str(response.status)).inc()
    metrics.latency.labels(endpoint, cache).observe(time.perf_counter() - start)
    return response


async def recommend(request: web.Request) -> web.Response:
    result = await request.app[_SERVICE].recommend(parse_recommend(await _json_body(request)))
    return web.Response(
        body=orjson.dumps(result.to_json()),
        content_type="application/json",
        headers={"X-Cache": result.source},
    )


async def feedback(request: web.Request) -> web.Response:
    await request.app[_SERVICE].feedback(parse_feedback(await _json_body(request)))
    return web.json_response({"accepted": True})


async def predict(request: web.Request) -> web.Response:
    body = await _json_body(request)
    answer, source = await request.app[_PASSTHROUGH].predict_json(request.match_info["tail"], body)
    return web.Response(
        text=json.dumps(answer), content_type="application/json", headers={"X-Cache": source}
    )


async def healthz(request: web.Request) -> web.Response:
    service = request.app[_SERVICE]
    if not service.ready:
        return _error(503, "no model version known yet: the model servers are not answering")
    if request.app[_CACHE].is_up:
        return web.json_response({"status": "serving"})
    return web.json_response({"status": "degraded: Redis is unreachable, serving uncached"})


async def metrics(request: web.Request) -> web.Response:
    return web.Response(body=request.app[_METRICS].render(), content_type="text/plain")


def create_app(
    service: RecommendationService,
    passthrough: PredictPassThrough,
    cache: RedisCache,
    gateway_metrics: GatewayMetrics,
    max_body_bytes: int,
) -> web.Application:
    """The REST application; it owns no state beyond references to the data plane."""
    app = web.Application(middlewares=[_errors_and_metrics], client_max_size=max_body_bytes)
    app[_SERVICE], app[_PASSTHROUGH] = service, passthrough
    app[_METRICS], app[_MAX_BODY], app[_CACHE] = gateway_metrics, max_body_bytes, cache
    app.router.add_post("/v1/recommendations", recommend)
    app.router.add_post("/v1/feedback", feedback)
    app.router.add_post("/v1/models/{tail:.+}", predict)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    return app
