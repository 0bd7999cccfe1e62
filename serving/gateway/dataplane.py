"""The recommendation data plane: variant assignment, cache and model call.

Transport-agnostic: REST and gRPC (`serving.gateway.protocol`) hand it validated requests and
map its `ServingError`s to their statuses. Every answer names the model version and the
variant that produced it, in a signed request id (`aiqleads.events.attribution`), and is
logged as an impression; a feedback is attributed from its request id alone, so any replica
can take it, and it is acknowledged only once the event store holds it (`event_log`).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from aiqleads.events import attribution
from aiqleads.events.records import Feedback, Impression, default_feedback_id
from serving.errors import Code, ServingError, invalid, unavailable
from serving.gateway.cache import KEY_PREFIX, CachingLoader, Loaded, Source
from serving.gateway.event_log import EventLogWriter
from serving.gateway.metrics import GatewayMetrics
from serving.gateway.model_client import ModelClient
from serving.gateway.online_features import ModelFeatures, OnlineFeatureReader, OnlineInputs
from serving.gateway.validation import FeedbackRequest, RecommendRequest
from serving.gateway.variants import VersionTracker, VersionView, assign_variant

# A failed version refresh that keeps the last known view (when there is one).
_REFRESH_TRANSIENT = (Code.UNAVAILABLE, Code.NOT_FOUND)


@dataclass(frozen=True)
class FeedbackReceipt:
    feedback_id: str
    duplicate: bool  # the event store had this feedback id already: recorded once

    def to_json(self) -> dict[str, Any]:
        return {"accepted": True, "duplicate": self.duplicate, "feedback_id": self.feedback_id}


@dataclass(frozen=True)
class Recommendation:
    request_id: str
    model_version: int
    variant: str
    cached: bool
    items: tuple[tuple[str, float], ...]
    source: Source = Source.MISS  # for metrics and X-Cache, not part of the answer

    def to_json(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "model_version": self.model_version,
            "variant": self.variant,
            "cached": self.cached,
            "items": [{"lead_id": lead, "score": score} for lead, score in self.items],
        }


def recommend_key(
    model_name: str, version: int, request: RecommendRequest, online_token: str = ""
) -> str:
    """The cache key of one recommendation: model, version and every input that matters,
    the online features' version (`OnlineInputs.version_token`) among them."""
    inputs = json.dumps(
        [request.user_id, request.k, request.latitude, request.longitude, online_token]
    )
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
        events: EventLogWriter | None = None,
        attribution_key: bytes | None = None,
        features: OnlineFeatureReader | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._model, self._tracker, self._loader = model, tracker, loader
        self._metrics = metrics
        self._canary_fraction = canary_fraction
        self._events = events
        # Without a shared key (no event store), ids still verify on this replica.
        self._key = attribution_key or attribution.new_key()
        self._features = features
        self._model_features: dict[int, ModelFeatures | None] = {}  # per model version
        self._clock = clock

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
        """One recommendation, counted per A/B variant (the A/B report's guardrails)."""
        started = time.perf_counter()
        try:
            result = await self._recommend(request)
        except ServingError:
            arm = assign_variant(
                request.user_id, self._tracker.view.fraction(self._canary_fraction)
            )
            self._metrics.variant_answers.labels(arm, "error").inc()
            raise
        self._metrics.variant_answers.labels(result.variant, "ok").inc()
        self._metrics.variant_latency.labels(result.variant).observe(time.perf_counter() - started)
        return result

    async def _recommend(self, request: RecommendRequest) -> Recommendation:
        view = await self.versions()
        arm = assign_variant(request.user_id, view.fraction(self._canary_fraction))
        variant, version = view.resolve(arm)
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
        served = int(payload["version"])
        now = self._clock()
        result = Recommendation(
            request_id=attribution.issue(self._key, served, variant, request.user_id, now),
            model_version=served,
            variant=variant,
            cached=loaded.source in (Source.HIT, Source.LOCAL),
            items=items,
            source=loaded.source,
        )
        self._after(request, result, payload.get("features", {}), now)
        return result

    async def _online(self, user_id: str, version: int) -> OnlineInputs | None:
        """The online store's inputs for this user and model version; None: the snapshot's
        features alone (no store, a snapshot-only model, or the store could not answer)."""
        if self._features is None:
            return None
        if version not in self._model_features:
            self._model_features[version] = await self._model.feature_views(version)
        model = self._model_features[version]
        views = self._features.usable(model)
        if model is None or views is None:
            return None
        return await self._features.read(user_id, model, views)

    async def _load(self, request: RecommendRequest, version: int) -> Loaded:
        online = await self._online(request.user_id, version)

        # A user the store has nothing on, no lead left out: `recommend`, the same answer.
        model_online = None if online is None or online.empty else online

        async def compute() -> bytes:
            recs = await self._model.recommend(
                request.user_id,
                request.k,
                request.latitude,
                request.longitude,
                version,
                model_online,
            )
            items = [[lead, score] for lead, score in zip(recs.lead_ids, recs.scores, strict=False)]
            answer = {"version": recs.model_version, "items": items}
            if recs.features:
                answer["features"] = recs.features
            return orjson.dumps(answer)

        token = "" if online is None else online.version_token
        key = recommend_key(self._model.model_name, version, request, token)
        return await self._loader.load("recommend", key, compute)

    def _after(
        self,
        request: RecommendRequest,
        result: Recommendation,
        features: dict[str, Any],
        now: float,
    ) -> None:
        scores = self._metrics.scores.labels(result.variant)  # one label lookup per answer
        for _, score in result.items:
            scores.observe(score)
        if self._events is None:
            return
        if request.has_location:
            features = {
                **features,
                "user_latitude": request.latitude,
                "user_longitude": request.longitude,
            }
        self._events.log_impression(
            Impression(
                request_id=result.request_id,
                ts=now,
                user_id=request.user_id,
                model_version=result.model_version,
                variant=result.variant,
                k=request.k,
                lead_ids=tuple(lead for lead, _ in result.items),
                scores=tuple(score for _, score in result.items),
                cache=result.source.value,
                features=features,
            )
        )

    async def feedback(self, request: FeedbackRequest) -> FeedbackReceipt:
        """Store one engagement event, attributed to the answer its request id names."""
        try:
            answer = attribution.verify(self._key, request.request_id, request.user_id)
        except attribution.UnknownRequestError as e:
            raise invalid(f"{e}: send the request_id of a recommendation this user got") from e
        if self._events is None:
            raise unavailable("this gateway has no event store: feedback cannot be recorded")
        feedback_id = request.feedback_id or default_feedback_id(
            request.request_id, request.lead_id, request.event_type
        )
        stored = await self._events.append_feedback(
            Feedback(
                feedback_id=feedback_id,
                request_id=request.request_id,
                ts=self._clock(),
                user_id=request.user_id,
                lead_id=request.lead_id,
                event_type=request.event_type,
                model_version=answer.model_version,
                variant=answer.variant,
                issued_at=answer.issued_at,
            )
        )
        if stored:
            self._metrics.feedback.labels(request.event_type, answer.variant).inc()
        return FeedbackReceipt(feedback_id=feedback_id, duplicate=not stored)
