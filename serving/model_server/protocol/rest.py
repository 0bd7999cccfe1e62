"""The REST transport (aiohttp): TF Serving's URLs, JSON bodies, statuses and error bodies.

Model work runs on a thread pool (never on the event loop), bounded by
`--rest_api_timeout_in_ms`. Every `ServingError` becomes `{"error": message}` with the HTTP
status `HTTP_STATUS` gives its code - the one place that mapping lives.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from aiohttp import web
from google.protobuf import json_format
from google.protobuf.message import Message
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    regression_pb2,
)

from serving import json_limits
from serving.errors import Code, ServingError, invalid
from serving.model_server.batching import Inputs
from serving.model_server.dataplane import SIGNATURE_DEF_FIELD, DataPlane, Spec
from serving.model_server.metrics import ServerMetrics
from serving.model_server.protocol import rest_json
from serving.model_server.servable import Signature

MAX_BODY_BYTES = 64 * 1024 * 1024
HTTP_STATUS = {
    Code.OK: 200,
    Code.CANCELLED: 408,
    Code.DEADLINE_EXCEEDED: 408,
    Code.UNKNOWN: 500,
    Code.INTERNAL: 500,
    Code.DATA_LOSS: 500,
    Code.INVALID_ARGUMENT: 400,
    Code.FAILED_PRECONDITION: 400,
    Code.OUT_OF_RANGE: 400,
    Code.NOT_FOUND: 404,
    Code.ALREADY_EXISTS: 409,
    Code.ABORTED: 409,
    Code.PERMISSION_DENIED: 403,
    Code.RESOURCE_EXHAUSTED: 429,
    Code.UNIMPLEMENTED: 501,
    Code.UNAVAILABLE: 503,
    Code.UNAUTHENTICATED: 401,
}
_NAME = r"([^/:]+)"
_VERSION = r"(?:/versions/(\d+)|/labels/([^/:]+))?"
POST_PATH = re.compile(rf"(?i)/v1/models/{_NAME}{_VERSION}:(classify|regress|predict)")
GET_PATH = re.compile(rf"(?i)/v1/models/{_NAME}{_VERSION}(?:/(metadata))?")
_T = TypeVar("_T")
log = logging.getLogger(__name__)


def _json_response(payload: object, status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(payload, separators=(",", ":")).encode(),
        status=status,
        content_type="application/json",
    )


def error_response(error: ServingError) -> web.Response:
    return _json_response({rest_json.ERROR_KEY: error.message}, HTTP_STATUS.get(error.code, 500))


def _spec(match: re.Match[str], signature_name: str = "") -> Spec:
    name, version, label = match.group(1), match.group(2), match.group(3)
    return Spec(
        name=name,
        version=int(version) if version else None,
        label=label,
        signature_name=signature_name,
    )


def _fill_spec(out: model_pb2.ModelSpec, spec: Spec) -> None:
    out.name = spec.name
    if spec.version is not None:
        out.version.value = spec.version
    elif spec.label:
        out.version_label = spec.label


def _proto_dict(message: Message) -> dict[str, Any]:
    fields: dict[str, Any] = json_format.MessageToDict(
        message, preserving_proto_field_name=True, including_default_value_fields=True
    )
    return fields


class RestApi:
    """Builds the aiohttp application over a `DataPlane`."""

    def __init__(
        self,
        dataplane: DataPlane,
        metrics: ServerMetrics,
        timeout_ms: int,
        metrics_path: str | None,
        workers: int = 16,
    ) -> None:
        self.dataplane = dataplane
        self.metrics = metrics
        self.timeout = timeout_ms / 1000 if timeout_ms > 0 else None
        self.metrics_path = metrics_path
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rest")

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_route("*", "/{tail:.*}", self.dispatch)
        return app

    async def _run(self, fn: Callable[..., _T], *args: object) -> _T:
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(loop.run_in_executor(self.pool, fn, *args), self.timeout)
        except asyncio.TimeoutError:
            if self.timeout is None:  # no deadline: raised by `fn` itself
                raise
            raise ServingError(
                Code.DEADLINE_EXCEEDED,
                f"Request timed out after {int(self.timeout * 1000)} ms (--rest_api_timeout_in_ms)",
            ) from None

    async def dispatch(self, request: web.Request) -> web.Response:
        path, method = request.path, request.method
        if self.metrics_path and path == self.metrics_path and method == "GET":
            return web.Response(body=self.metrics.render(), content_type="text/plain")
        started = time.perf_counter()
        api, model, code = "unknown", "", Code.OK
        try:
            if method == "POST" and (m := POST_PATH.fullmatch(path)):
                api, model = m.group(4).lower(), m.group(1)
                return await self._post(request, m, api)
            if method == "GET" and (m := GET_PATH.fullmatch(path)):
                api, model = ("metadata" if m.group(4) else "status"), m.group(1)
                return await self._get(m)
            if path.lower().startswith("/v1/"):
                raise invalid(f"Malformed request: {method} {path}")
            code = Code.NOT_FOUND
            return _json_response({rest_json.ERROR_KEY: f"Not found: {method} {path}"}, 404)
        except ServingError as e:
            code = e.code
            return error_response(e)
        except Exception as e:  # the catch-all: INTERNAL as JSON, counted, logged with its stack
            code = Code.INTERNAL
            log.exception("%s %s failed", method, path)
            return error_response(ServingError(Code.INTERNAL, f"{type(e).__name__}: {e}"))
        finally:
            if model:
                label = self.dataplane.model_label(model)  # no client-made metric labels
                self.metrics.observe(api, "rest", label, code.name, time.perf_counter() - started)

    async def _body(self, request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        body = json_limits.loads(raw, what="JSON Parse error: the body")
        if not isinstance(body, dict):
            raise invalid("JSON Parse error: the request body must be a JSON object")
        return body

    async def _post(self, request: web.Request, m: re.Match[str], api: str) -> web.Response:
        body = await self._body(request)
        signature_name = body.get(rest_json.SIGNATURE_NAME_KEY, "")
        if not isinstance(signature_name, str):
            raise invalid("'signature_name' must be a string")
        spec = _spec(m, signature_name)
        if api == "predict":
            return await self._predict(spec, body)
        example_input = rest_json.examples_input(body)
        message = (
            classification_pb2.ClassificationRequest()
            if api == "classify"
            else regression_pb2.RegressionRequest()
        )
        _fill_spec(message.model_spec, spec)
        message.model_spec.signature_name = signature_name
        message.input.CopyFrom(example_input)
        if api == "classify":
            response = await self._run(self.dataplane.classify, message)
            result = [
                [[c.label, c.score] for c in row.classes] for row in response.result.classifications
            ]
        else:
            response = await self._run(self.dataplane.regress, message)
            result = [r.value for r in response.result.regressions]
        return _json_response({rest_json.RESULTS_KEY: result})

    async def _predict(self, spec: Spec, body: dict[str, Any]) -> web.Response:
        has_rows, has_cols = rest_json.INSTANCES_KEY in body, rest_json.INPUTS_KEY in body
        if has_rows == has_cols:
            raise invalid(
                "Missing 'inputs' or 'instances' key"
                if not has_rows
                else "Not both 'inputs' and 'instances' may be specified; pick one format"
            )
        extra = set(body) - {
            rest_json.INSTANCES_KEY,
            rest_json.INPUTS_KEY,
            rest_json.SIGNATURE_NAME_KEY,
        }
        if extra:
            raise invalid(f"unknown keys in the predict request: {sorted(extra)}")
        build: Callable[[Signature], Inputs]
        if has_rows:
            build = lambda sig: rest_json.row_inputs(body[rest_json.INSTANCES_KEY], sig)  # noqa: E731
        else:
            build = lambda sig: rest_json.columnar_inputs(body[rest_json.INPUTS_KEY], sig)  # noqa: E731

        def work() -> dict[str, Any]:
            _, _, outputs = self.dataplane.predict_arrays(spec, build)
            if has_rows:
                return {rest_json.PREDICTIONS_KEY: rest_json.row_outputs(outputs)}
            return {rest_json.OUTPUTS_KEY: rest_json.columnar_outputs(outputs)}

        return _json_response(await self._run(work))

    async def _get(self, m: re.Match[str]) -> web.Response:
        spec = _spec(m)
        if m.group(4):  # metadata
            message = get_model_metadata_pb2.GetModelMetadataRequest()
            _fill_spec(message.model_spec, spec)
            message.metadata_field.append(SIGNATURE_DEF_FIELD)
            response = await self._run(self.dataplane.metadata, message)
            sigmap = get_model_metadata_pb2.SignatureDefMap()
            response.metadata[SIGNATURE_DEF_FIELD].Unpack(sigmap)
            return _json_response(
                {
                    "model_spec": {
                        "name": response.model_spec.name,
                        "signature_name": "",
                        "version": str(response.model_spec.version.value),
                    },
                    "metadata": {SIGNATURE_DEF_FIELD: _proto_dict(sigmap)},
                }
            )
        message = get_model_status_pb2.GetModelStatusRequest()
        _fill_spec(message.model_spec, spec)
        response = await self._run(self.dataplane.status, message)
        return _json_response(_proto_dict(response))

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=False)
