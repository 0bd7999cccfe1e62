"""The recommendation data plane: variant assignment, cache and model call.

Transport-agnostic: REST and gRPC (`serving.gateway.protocol`) hand it validated requests and
map its `ServingError`s to their statuses. Every answer names the model version and the
variant that produced it, and the request and feedback logs record both for quality
monitoring per arm.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, replace

import orjson

from serving.errors import Code, ServingError
from serving.gateway.cache import KEY_PREFIX, CachingLoader, Loaded, Source
from serving.gateway.features import OnlineFeatures
from serving.gateway.feedback_log import JsonlLog, NullLog
from serving.gateway.metrics import GatewayMetrics
from serving.gateway.model_client import ModelClient
from serving.gateway.validation import FeedbackRequest, RecommendRequest
from serving.gateway.variants import VersionTracker, VersionView, assign_variant

RECENT_REQUESTS = 100_000  # request_id -> (version, variant), to attribute feedback
# A failed version refresh that keeps the last known view (when there is one).
_REFRESH_TRANSIENT = (Code.UNAVAILABLE, Code.NOT_FOUND)


@dataclass(frozen=True)
class Recommendation:
    request_id: str
    model_version: int
    variant: str
    cached: bool
    items: tuple[tuple[str, float], ...]
    source: Source = Source.MISS  # for metrics and X-Cache, not part of the answer

    def to_json(self) -> dict:
        return {
            "request_id": self.request_id,
            "model_version": self.model_version,
            "variant": self.variant,
            "cached": self.cached,
            "items": [{"lead_id": lead, "score": score} for lead, score in self.items],
        }


def recommend_key(model_name: str, version: int, request: RecommendRequest) -> str:
    """The cache key of one recommendation: model, version and every input that matters."""
    inputs = json.dumps([request.user_id, request.k, request.latitude, request.longitude])
    digest = hashlib.sha256(inputs.encode()).hexdigest()[:40]
    return f"{KEY_PREFIX}:rec:{model_name}:{version}:{digest}"


class DataPlane:
    """Answers recommendation and feedback requests; owns no transport."""

    def __init__(
        self,
        model: ModelClient,
        tracker: VersionTracker,
        loader: CachingLoader,
        metrics: GatewayMetrics,
        canary_fraction: float = 0.0,
        request_log: JsonlLog | NullLog | None = None,
        feedback_log: JsonlLog | NullLog | None = None,
        features: OnlineFeatures | None = None,
    ) -> None:
        self._model, self._tracker, self._loader = model, tracker, loader
        self._metrics = metrics
        self._canary_fraction = canary_fraction
        self._request_log = request_log or NullLog()
        self._feedback_log = feedback_log or NullLog()
        self._features = features
        self._recent: OrderedDict[str, tuple[int, str]] = OrderedDict()

    @property
    def ready(self) -> bool:
        """True once a model version is known (Redis is optional)."""
        view = self._tracker.view
        return view.latest is not None or bool(view.labels)

    async def versions(self, refresh: bool = False) -> VersionView:
        """The current version view; refreshed first if asked or if none is known yet."""
        if refresh or not self.ready:
            try:
                return await self._tracker.refresh()
            except ServingError as e:
                if e.code not in _REFRESH_TRANSIENT or not self.ready:
                    raise
        return self._tracker.view

    async def recommend(self, request: RecommendRequest) -> Recommendation:
        if self._features is not None and not request.has_location:
            location = await self._features.user_location(request.user_id)
            if location is not None:
                request = replace(request, latitude=location[0], longitude=location[1])
        arm = assign_variant(request.user_id, self._canary_fraction)
        variant, version = (await self.versions()).resolve(arm)
        try:
            loaded = await self._load(request, version)
        except ServingError as e:
            if e.code != Code.NOT_FOUND:
                raise
            # The version was unloaded since the last poll: learn the new one and retry once.
            variant, version = (await self.versions(refresh=True)).resolve(arm)
            loaded = await self._load(request, version)
        payload = orjson.loads(loaded.value)
        items = tuple((lead, float(score)) for lead, score in payload["items"])
        result = Recommendation(
            request_id=uuid.uuid4().hex,
            model_version=int(payload["version"]),
            variant=variant,
            cached=loaded.source in (Source.HIT, Source.LOCAL),
            items=items,
            source=loaded.source,
        )
        self._after(request, result, loaded.source)
        return result

    async def _load(self, request: RecommendRequest, version: int) -> Loaded:
        async def compute() -> bytes:
            recs = await self._model.recommend(
                request.user_id, request.k, request.latitude, request.longitude, version
            )
            items = [[lead, score] for lead, score in zip(recs.lead_ids, recs.scores, strict=False)]
            return orjson.dumps({"version": recs.model_version, "items": items})

        key = recommend_key(self._model.model_name, version, request)
        return await self._loader.load("recommend", key, compute)

    def _after(self, request: RecommendRequest, result: Recommendation, source: Source) -> None:
        scores = self._metrics.scores.labels(result.variant)  # one label lookup per answer
        for _, score in result.items:
            scores.observe(score)
        self._recent[result.request_id] = (result.model_version, result.variant)
        if len(self._recent) > RECENT_REQUESTS:
            self._recent.popitem(last=False)
        self._request_log.write(
            {
                "ts": round(time.time(), 3),
                "request_id": result.request_id,
                "user_id": request.user_id,
                "k": request.k,
                "latitude": request.latitude,
                "longitude": request.longitude,
                "model_version": result.model_version,
                "variant": result.variant,
                "cache": source.value,
                "lead_ids": [lead for lead, _ in result.items],
                "scores": [score for _, score in result.items],
            }
        )

    async def feedback(self, request: FeedbackRequest) -> None:
        """Record one engagement event with the version and variant that earned it."""
        version, variant = self._recent.get(
            request.request_id, (None, assign_variant(request.user_id, self._canary_fraction))
        )
        self._metrics.feedback.labels(request.event_type, variant).inc()
        self._feedback_log.write(
            {
                "ts": round(time.time(), 3),
                "request_id": request.request_id,
                "user_id": request.user_id,
                "lead_id": request.lead_id,
                "event_type": request.event_type,
                "model_version": version,
                "variant": variant,
            }
        )
