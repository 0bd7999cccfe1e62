"""gRPC client of the model servers, speaking only the standard TF Serving APIs.

It works the same against `aiqleads-model-server` and the real `tensorflow_model_server`:
Predict on the `recommend` signature, GetModelStatus for the latest version, and
GetModelMetadata with a version label to resolve `stable` / `canary`. Every call has a
deadline; calls that fail with UNAVAILABLE are retried a bounded number of times.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
import numpy as np
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from serving.errors import Code, Reason, ServingError, not_found, unavailable
from serving.gateway.metrics import GatewayMetrics
from serving.gateway.online_features import ModelFeatures, OnlineInputs
from transforms import features as F

PREDICT_METHOD = "/tensorflow.serving.PredictionService/Predict"
_RETRYABLE = (grpc.StatusCode.UNAVAILABLE,)
_UNAVAILABLE = (
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
)
_NO_SUCH_LABEL = (
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.FAILED_PRECONDITION,
)
_AVAILABLE = get_model_status_pb2.ModelVersionStatus.AVAILABLE
_MAX_MESSAGE = 64 * 1024 * 1024
_T = TypeVar("_T")
FeatureValue = str | float | None  # a JSON-safe feature value (`_plain`)


@dataclass(frozen=True)
class Recommendations:
    model_version: int
    lead_ids: tuple[str, ...]
    scores: tuple[float, ...]
    features: dict[str, list[FeatureValue]] = field(default_factory=dict)
    """Per shown lead, the raw features the model exports (`RECOMMEND_OUTPUT_FEATURES`)."""


def _vector(dtype: int, values: Sequence[object], field: str) -> tensor_pb2.TensorProto:
    proto = tensor_pb2.TensorProto(
        dtype=dtype,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=len(values))]
        ),
    )
    getattr(proto, field).extend(values)
    return proto


def _matrix(dtype: int, values: Sequence[object], field: str) -> tensor_pb2.TensorProto:
    """A [1, len(values)] tensor (one request row)."""
    proto = tensor_pb2.TensorProto(
        dtype=dtype,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[
                tensor_shape_pb2.TensorShapeProto.Dim(size=1),
                tensor_shape_pb2.TensorShapeProto.Dim(size=len(values)),
            ]
        ),
    )
    getattr(proto, field).extend(values)
    return proto


def _online_tensors(online: OnlineInputs) -> dict[str, tensor_pb2.TensorProto]:
    """`recommend_online`'s extra inputs for one row."""

    def strings(values: Sequence[str]) -> tensor_pb2.TensorProto:
        return _matrix(types_pb2.DT_STRING, [v.encode() for v in values], "string_val")

    def floats(values: Sequence[float]) -> tensor_pb2.TensorProto:
        return _matrix(types_pb2.DT_FLOAT, values, "float_val")

    return {
        F.ONLINE_USER: floats(online.user),
        F.ONLINE_SHARE_KEYS: strings(online.share_keys),
        F.ONLINE_SHARE_VALUES: floats(online.share_values),
        F.ONLINE_LEAD_IDS: strings(online.lead_ids),
        F.ONLINE_LEAD_EVENTS: floats(online.lead_events),
        F.EXCLUDED_LEAD_IDS: strings(online.excluded),
    }


def _row(proto: tensor_pb2.TensorProto, name: str) -> list[Any]:
    """The first row of a [1, K] output tensor, from typed fields or tensor_content: strings
    for a string tensor, else floats."""
    if proto.dtype == types_pb2.DT_STRING:
        return [v.decode("utf-8", "replace") for v in proto.string_val]
    if proto.tensor_content:
        dtype = {types_pb2.DT_FLOAT: np.float32, types_pb2.DT_DOUBLE: np.float64}.get(proto.dtype)
        if dtype is None:
            raise unavailable(f"model output {name!r} has unexpected dtype {proto.dtype}")
        values: list[float] = np.frombuffer(proto.tensor_content, dtype=dtype).tolist()
        return values
    return list(proto.float_val or proto.double_val)


def _plain(value: str | float) -> FeatureValue:
    """A JSON-safe feature value: NaN (unknown) becomes None, floats keep 6 significant digits."""
    if isinstance(value, str):
        return value
    return None if math.isnan(value) else float(f"{value:.6g}")


class ModelClient:
    """Async client of one model name on a set of model servers (one gRPC channel)."""

    def __init__(
        self,
        target: str,
        model_name: str,
        metrics: GatewayMetrics,
        timeout_seconds: float = 0.5,
        retries: int = 1,
    ) -> None:
        self.model_name = model_name
        self._metrics = metrics
        self._timeout = timeout_seconds
        self._retries = retries
        self._channel = grpc.aio.insecure_channel(
            target,
            options=[
                ("grpc.lb_policy_name", "round_robin"),
                ("grpc.max_receive_message_length", _MAX_MESSAGE),
                ("grpc.enable_retries", 0),
                ("grpc.initial_reconnect_backoff_ms", 100),
                ("grpc.max_reconnect_backoff_ms", 1000),
            ],
        )
        self._predict = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._models = model_service_pb2_grpc.ModelServiceStub(self._channel)
        self._raw_predict = self._channel.unary_unary(PREDICT_METHOD)

    async def close(self) -> None:
        await self._channel.close()

    async def _call(
        self,
        method: str,
        fn: Callable[..., Awaitable[_T]],
        request: object,
        timeout: float | None = None,
    ) -> _T:
        timeout = self._timeout if timeout is None else timeout
        for attempt in range(self._retries + 1):
            started = time.perf_counter()
            try:
                response = await fn(request, timeout=timeout)
            except grpc.aio.AioRpcError as e:
                code = e.code()
                if code in _RETRYABLE and attempt < self._retries:
                    self._metrics.model_calls.labels(method, "retry").inc()
                    await asyncio.sleep(0.01 * (attempt + 1))
                    continue
                self._metrics.model_calls.labels(method, code.name.lower()).inc()
                raise
            self._metrics.model_calls.labels(method, "ok").inc()
            self._metrics.model_call_latency.labels(method).observe(time.perf_counter() - started)
            return response
        raise AssertionError("unreachable")

    async def recommend(
        self,
        user_id: str,
        k: int,
        latitude: float | None,
        longitude: float | None,
        version: int,
        online: OnlineInputs | None = None,
    ) -> Recommendations:
        """Top-`k` leads of one user from model version `version`: the `recommend`
        signature, or `recommend_online` with the online store's ``online`` inputs."""
        request = predict_pb2.PredictRequest()
        request.model_spec.name = self.model_name
        request.model_spec.signature_name = (
            F.RECOMMEND_SIGNATURE if online is None else F.RECOMMEND_ONLINE_SIGNATURE
        )
        request.model_spec.version.value = version
        nan = math.nan
        inputs = request.inputs
        inputs[F.RECOMMEND_INPUT_USER_ID].CopyFrom(
            _vector(types_pb2.DT_STRING, [user_id.encode()], "string_val")
        )
        lat = nan if latitude is None else latitude
        lon = nan if longitude is None else longitude
        inputs[F.RECOMMEND_INPUT_LATITUDE].CopyFrom(_vector(types_pb2.DT_FLOAT, [lat], "float_val"))
        inputs[F.RECOMMEND_INPUT_LONGITUDE].CopyFrom(
            _vector(types_pb2.DT_FLOAT, [lon], "float_val")
        )
        inputs[F.RECOMMEND_INPUT_K].CopyFrom(_vector(types_pb2.DT_INT32, [k], "int_val"))
        if online is not None:
            for name, tensor in _online_tensors(online).items():
                inputs[name].CopyFrom(tensor)
        try:
            response = await self._call("recommend", self._predict.Predict, request)
        except grpc.aio.AioRpcError as e:
            raise self._translate(e, f"version {version}") from e
        outputs = response.outputs
        missing = [
            name
            for name in (F.RECOMMEND_OUTPUT_LEAD_IDS, F.RECOMMEND_OUTPUT_SCORES)
            if name not in outputs
        ]
        if missing:
            raise unavailable(
                f"model {self.model_name} version {version} answered without output(s) "
                f"{', '.join(missing)}: is it a recommender with the 'recommend' signature?"
            )
        lead_ids = _row(outputs[F.RECOMMEND_OUTPUT_LEAD_IDS], F.RECOMMEND_OUTPUT_LEAD_IDS)[:k]
        scores = _row(outputs[F.RECOMMEND_OUTPUT_SCORES], F.RECOMMEND_OUTPUT_SCORES)[:k]
        served = response.model_spec.version.value or version
        features = {
            key: [_plain(v) for v in _row(outputs[name], name)[: len(lead_ids)]]
            for key, name in F.RECOMMEND_OUTPUT_FEATURES.items()
            if name in outputs
        }
        return Recommendations(served, tuple(lead_ids), tuple(float(s) for s in scores), features)

    async def feature_views(self, version: int) -> ModelFeatures | None:
        """What model version ``version`` was trained on (its `feature_views` signature);
        None for a model without it (it answers from its snapshot, `recommend`)."""
        request = predict_pb2.PredictRequest()
        request.model_spec.name = self.model_name
        request.model_spec.signature_name = F.FEATURE_VIEWS_SIGNATURE
        request.model_spec.version.value = version
        request.inputs[F.FEATURE_VIEWS_INPUT].CopyFrom(
            _vector(types_pb2.DT_STRING, [self.model_name.encode()], "string_val")
        )
        try:
            response = await self._call("feature_views", self._predict.Predict, request)
        except grpc.aio.AioRpcError as e:
            if e.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION):
                return None  # no such signature: a snapshot-only model
            raise self._translate(e, f"version {version}") from e
        outputs = response.outputs
        names = (
            F.FEATURE_VIEWS_OUTPUT_NAMES,
            F.FEATURE_VIEWS_OUTPUT_VERSIONS,
            F.FEATURE_VIEWS_OUTPUT_CATALOGUE,
        )
        if any(name not in outputs for name in names):
            return None
        views = _row(outputs[F.FEATURE_VIEWS_OUTPUT_NAMES], F.FEATURE_VIEWS_OUTPUT_NAMES)
        numbers = outputs[F.FEATURE_VIEWS_OUTPUT_VERSIONS]
        versions = (
            list(numbers.int64_val) or np.frombuffer(numbers.tensor_content, np.int64).tolist()
        )
        catalogue = _row(
            outputs[F.FEATURE_VIEWS_OUTPUT_CATALOGUE], F.FEATURE_VIEWS_OUTPUT_CATALOGUE
        )
        return ModelFeatures(
            version=version,
            views={str(n): int(v) for n, v in zip(views, versions, strict=True)},
            catalogue=frozenset(catalogue),
        )

    async def predict_raw(self, request_bytes: bytes) -> bytes:
        """Forward a serialized PredictRequest unchanged; the serialized response comes back."""
        try:
            response: bytes = await self._call("predict", self._raw_predict, request_bytes)
            return response
        except grpc.aio.AioRpcError as e:
            raise self._translate(e, "the pass-through request") from e

    async def metadata(self, version: int) -> get_model_metadata_pb2.GetModelMetadataResponse:
        """Signature metadata of one version (for REST pass-through conversions)."""
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        request.model_spec.name = self.model_name
        request.model_spec.version.value = version
        try:
            return await self._call("metadata", self._predict.GetModelMetadata, request)
        except grpc.aio.AioRpcError as e:
            raise self._translate(e, f"version {version}") from e

    async def latest_version(self) -> int | None:
        """The highest AVAILABLE version of the model, None when none is loaded."""
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = self.model_name
        try:
            response = await self._call("status", self._models.GetModelStatus, request)
        except grpc.aio.AioRpcError as e:
            if e.code() in _NO_SUCH_LABEL:
                return None
            raise self._translate(e, "status") from e
        versions = [s.version for s in response.model_version_status if s.state == _AVAILABLE]
        return max(versions, default=None)

    async def label_version(self, label: str) -> int | None:
        """The version a label points to, None when the model config has no such label."""
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        request.model_spec.name = self.model_name
        request.model_spec.version_label = label
        try:
            response = await self._call("metadata", self._predict.GetModelMetadata, request)
        except grpc.aio.AioRpcError as e:
            if e.code() in _NO_SUCH_LABEL:
                return None
            raise self._translate(e, f"label {label}") from e
        return response.model_spec.version.value or None

    def _translate(self, error: grpc.aio.AioRpcError, what: str) -> ServingError:
        """UNAVAILABLE when no model server answered, NOT_FOUND as given, and any other
        refusal with the model server's code (`Reason.UPSTREAM_REJECTED`)."""
        code = error.code()
        detail = error.details() or code.name
        if code in _UNAVAILABLE:
            return unavailable(
                f"model servers did not answer for {self.model_name} {what} "
                f"({code.name}: {detail}); check that they run and have the model loaded"
            )
        if code == grpc.StatusCode.NOT_FOUND:
            return not_found(detail)
        return ServingError(Code[code.name], detail, Reason.UPSTREAM_REJECTED)
