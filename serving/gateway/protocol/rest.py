"""The REST transport (aiohttp): routes, JSON decoding, and the one error-to-status mapping."""

from __future__ import annotations

import asyncio
import json
import logging
import pathlib
import time

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

from serving import auth, json_limits
from serving.errors import Code, Reason, ServingError
from serving.gateway import access
from serving.gateway.cache import RedisCache, Source
from serving.gateway.dataplane import DataPlane
from serving.gateway.metrics import GatewayMetrics, error_kind
from serving.gateway.passthrough import PredictPassThrough
from serving.gateway.validation import parse_feedback, parse_recommend

# The one place a `ServingError` becomes a REST status: by reason where the error gives one
# (the statuses a canonical code cannot tell apart), else by code.
_STATUS_BY_REASON = {
    Reason.BODY_TOO_LARGE: 413,
    Reason.NOT_JSON: 415,
    Reason.UPSTREAM_REJECTED: 400,  # a model server refused the request the client made
}
_STATUS_BY_CODE = {
    Code.INVALID_ARGUMENT: 400,
    Code.UNAUTHENTICATED: 401,
    Code.PERMISSION_DENIED: 403,
    Code.NOT_FOUND: 404,
    Code.INTERNAL: 500,
    Code.UNAVAILABLE: 503,
}
_DATAPLANE = web.AppKey("dataplane", DataPlane)
_PASSTHROUGH = web.AppKey("passthrough", PredictPassThrough)
_METRICS = web.AppKey("metrics", GatewayMetrics)
_MAX_BODY = web.AppKey("max_body", int)
_CACHE = web.AppKey("cache", RedisCache)
_REQUIRE_CLAIMS = web.AppKey("require_claims", bool)
_DRAINING = web.AppKey("draining", asyncio.Event)
_OPENAPI = web.AppKey("openapi", bytes)
OPENAPI_FILE = pathlib.Path(__file__).resolve().parents[1] / "openapi.json"
log = logging.getLogger(__name__)


def http_status(error: ServingError) -> int:
    """The REST status of an error (500 for a code the gateway never raises)."""
    if error.reason is not None:
        return _STATUS_BY_REASON[error.reason]
    return _STATUS_BY_CODE.get(error.code, 500)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _too_large(message: str) -> ServingError:
    return ServingError(Code.INVALID_ARGUMENT, message, Reason.BODY_TOO_LARGE)


async def _json_body(request: web.Request) -> object:
    limit = request.app[_MAX_BODY]
    if request.content_type != "application/json":
        raise ServingError(
            Code.INVALID_ARGUMENT,
            f"send a JSON body with Content-Type: application/json (got {request.content_type!r})",
            Reason.NOT_JSON,
        )
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(f"the body has {request.content_length} bytes; the limit is {limit}")
    try:
        raw = await request.read()  # aiohttp enforces client_max_size while reading
    except web.HTTPRequestEntityTooLarge as e:
        raise _too_large(f"the body is over the limit; the limit is {limit}") from e
    return json_limits.loads(raw)


def _endpoint(request: web.Request) -> str:
    route = request.match_info.route.resource
    return route.canonical if route is not None else "unmatched"


@web.middleware
async def _errors_and_metrics(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turns `ServingError`s into JSON answers (`http_status`) and records every request."""
    metrics = request.app[_METRICS]
    endpoint = _endpoint(request)
    start = time.perf_counter()
    cache = Source.NONE.value
    try:
        response = await handler(request)
        cache = response.headers.get("X-Cache", Source.NONE.value).lower()
    except web.HTTPException as e:
        response = _error(e.status, e.reason if e.status != 404 else "no such endpoint")
    except ServingError as e:
        metrics.errors.labels(endpoint, error_kind(e)).inc()
        response = _error(http_status(e), e.message)
    except Exception as e:  # the catch-all: a JSON 500 (Envoy retries no 500), counted, logged
        log.exception("%s %s failed", request.method, request.path)
        error = ServingError(Code.INTERNAL, f"internal error ({type(e).__name__}); it is logged")
        metrics.errors.labels(endpoint, error_kind(error)).inc()
        response = _error(http_status(error), error.message)
    metrics.requests.labels(endpoint, str(response.status)).inc()
    metrics.latency.labels(endpoint, cache).observe(time.perf_counter() - start)
    return response


def _authorize(request: web.Request, user_id: str) -> None:
    if request.app[_REQUIRE_CLAIMS]:
        access.authorize(request.headers.get(auth.PAYLOAD_HEADER), user_id)


async def recommend(request: web.Request) -> web.Response:
    parsed = parse_recommend(await _json_body(request))
    _authorize(request, parsed.user_id)
    result = await request.app[_DATAPLANE].recommend(parsed)
    return web.Response(
        body=orjson.dumps(result.to_json()),
        content_type="application/json",
        headers={"X-Cache": result.source.value},
    )


async def feedback(request: web.Request) -> web.Response:
    parsed = parse_feedback(await _json_body(request))
    _authorize(request, parsed.user_id)
    receipt = await request.app[_DATAPLANE].feedback(parsed)
    return web.json_response(receipt.to_json())


async def predict(request: web.Request) -> web.Response:
    body = await _json_body(request)
    answer, source = await request.app[_PASSTHROUGH].predict_json(request.match_info["tail"], body)
    return web.Response(
        text=json.dumps(answer),
        content_type="application/json",
        headers={"X-Cache": source.value},
    )


async def healthz(request: web.Request) -> web.Response:
    if request.app[_DRAINING].is_set():
        return _error(503, "draining: this replica is stopping and takes no new requests")
    if not request.app[_DATAPLANE].ready:
        return _error(503, "no model version known yet: the model servers are not answering")
    if request.app[_CACHE].is_up:
        return web.json_response({"status": "serving"})
    return web.json_response({"status": "degraded: Redis is unreachable, serving uncached"})


async def openapi(request: web.Request) -> web.Response:
    return web.Response(body=request.app[_OPENAPI], content_type="application/json")


async def metrics(request: web.Request) -> web.Response:
    return web.Response(body=request.app[_METRICS].render(), content_type="text/plain")


def create_app(
    dataplane: DataPlane,
    passthrough: PredictPassThrough,
    cache: RedisCache,
    gateway_metrics: GatewayMetrics,
    max_body_bytes: int,
    *,
    require_claims: bool = False,
    draining: asyncio.Event | None = None,
) -> web.Application:
    """The REST application; it owns no state beyond references to the data plane.

    With ``require_claims`` recommendations and feedback need Envoy's verified token for
    their user (`access.authorize`); once ``draining`` is set, /healthz answers 503."""
    app = web.Application(middlewares=[_errors_and_metrics], client_max_size=max_body_bytes)
    app[_DATAPLANE], app[_PASSTHROUGH] = dataplane, passthrough
    app[_METRICS], app[_MAX_BODY], app[_CACHE] = gateway_metrics, max_body_bytes, cache
    app[_REQUIRE_CLAIMS], app[_DRAINING] = require_claims, draining or asyncio.Event()
    app[_OPENAPI] = OPENAPI_FILE.read_bytes()
    app.router.add_post("/v1/recommendations", recommend)
    app.router.add_post("/v1/feedback", feedback)
    app.router.add_post("/v1/models/{tail:.+}", predict)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/openapi.json", openapi)
    app.router.add_get("/metrics", metrics)
    return app
