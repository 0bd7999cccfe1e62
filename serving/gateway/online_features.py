"""The gateway's reads of the online feature store: one round trip per recommendation.

For each recommendation the gateway needs the user's rows of the views the model version was
trained on (`user_behaviour`, `user_geo`) and the set of unavailable leads (pending, sold,
withdrawn) (docs/feature_store.md). What the in-process mirror (`row_mirror`) holds costs no
round trip; the rest, and the availability sequence number while the mirror is off, is one
pipelined round trip to the online store. The unavailable set is kept here and read again
only when that number moves (once per status change, not per request).

What the model gets (`transforms.features.RECOMMEND_ONLINE_INPUTS`):

- the user's counts, recency, median price and location over the snapshot's (NaN where the
  store has nothing: an unknown user, a stale row or a missing feature keep the snapshot's);
- the user's property-type and region shares and per-lead history, when the store has any;
- the model's catalogue leads that the store holds unavailable.

Nothing here fails a request: with the store down, slow, or holding a row that does not
decode, the answer comes from the snapshot alone and the outcome is counted
(`aiqleads_gateway_online_features_total`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from aiqleads.features import definitions as d
from aiqleads.features import keys
from aiqleads.features.definitions import REGISTRY, FeatureView
from aiqleads.features.online import Row, row_from_hash
from aiqleads.features.user_state import days_since
from serving.gateway.metrics import GatewayMetrics
from serving.gateway.row_mirror import RowMirror, Tracking
from transforms import features as f

log = logging.getLogger(__name__)

USER_VIEWS = (d.USER_BEHAVIOUR_V1.name, d.USER_GEO_V1.name)
"""The user views the gateway feeds to a model (each at the version the model wants)."""
# The model's online user columns, from the store's features (None: computed here).
_USER_COLUMNS: dict[str, str | None] = {
    f.USER_VIEWS: d.USER_VIEWS,
    f.USER_CLICKS: d.USER_CLICKS,
    f.USER_INQUIRIES: d.USER_INQUIRIES,
    f.USER_PURCHASES: d.USER_PURCHASES,
    f.USER_DAYS_SINCE_LAST: None,  # from USER_LAST_EVENT_TS at request time
    f.USER_MEDIAN_PRICE: d.USER_MEDIAN_PRICE,
    f.USER_LATITUDE: d.USER_LATITUDE,
    f.USER_LONGITUDE: d.USER_LONGITUDE,
}
_SHARES = {f.USER_TYPE_SHARE: d.USER_TYPE_SHARES, f.USER_REGION_SHARE: d.USER_REGION_SHARES}


class Outcome:
    """Label values of `aiqleads_gateway_online_features_total`."""

    FOUND = "found"  # the user has rows: the model gets them
    UNKNOWN = "unknown"  # no row for the user: the snapshot's features
    STALE = "stale"  # a row older than its view's TTL: the snapshot's features
    STORE_ERROR = "store_error"  # store down, slow or unreadable: the snapshot alone
    INCOMPATIBLE = "incompatible"  # the model wants view versions the store does not hold
    SNAPSHOT_MODEL = "snapshot_model"  # a model without the online signature


@dataclass(frozen=True)
class OnlineInputs:
    """`recommend_online`'s extra inputs for one request, and what the answer depends on."""

    user: tuple[float, ...]  # per `features.ONLINE_USER_FEATURES`; NaN: the snapshot's
    share_keys: tuple[str, ...] = ()
    share_values: tuple[float, ...] = ()
    lead_ids: tuple[str, ...] = ()
    lead_events: tuple[float, ...] = ()
    excluded: tuple[str, ...] = ()
    version_token: str = ""
    """Changes whenever the inputs may: the user's rows' event times and the unavailable
    leads of the model's catalogue (part of the answer's cache key)."""

    @property
    def empty(self) -> bool:
        """Nothing over the snapshot: `recommend` gives the same answer, at less cost."""
        return (
            all(math.isnan(v) for v in self.user)
            and not self.share_keys
            and not self.lead_ids
            and not self.excluded
        )


@dataclass(frozen=True)
class ModelFeatures:
    """What one model version was trained on (its `feature_views` signature)."""

    version: int
    views: dict[str, int]  # view name -> version
    catalogue: frozenset[str]  # the leads it ranks


@dataclass
class _Availability:
    seq: int = -1
    unavailable: frozenset[str] = frozenset()
    epoch: int = -1  # the mirror's epoch of the counter when last read (-1: never)
    by_version: dict[int, tuple[tuple[str, ...], str]] = field(default_factory=dict)


def _number(row: Row, name: str) -> float:
    if not row.found or row.stale or name in row.missing:
        return math.nan
    value = row.values.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return math.nan
    return float(value) if math.isfinite(value) else math.nan


def _map(row: Row, name: str) -> dict[str, float]:
    if not row.found or row.stale or name in row.missing:
        return {}
    value = row.values.get(name)
    if not isinstance(value, dict):
        return {}
    return {str(k): float(v) for k, v in value.items() if math.isfinite(v)}


def inputs_from_rows(
    behaviour: Row, geo: Row, now: float, excluded: tuple[str, ...], excluded_token: str
) -> OnlineInputs:
    """The model's online inputs from the user's two rows (`Row` defaults never reach the
    model: a missing or stale value is NaN, the snapshot's)."""
    user = []
    for column in f.ONLINE_USER_FEATURES:  # the signature's column order
        name = _USER_COLUMNS[column]
        if name is None:
            last = _number(behaviour, d.USER_LAST_EVENT_TS)
            since = days_since(None if math.isnan(last) else last, now)
            user.append(math.nan if since is None else max(since, 0.0))
        else:
            user.append(
                _number(geo if name in (d.USER_LATITUDE, d.USER_LONGITUDE) else behaviour, name)
            )
    share_keys, share_values = [], []
    for share, name in _SHARES.items():
        for group, value in sorted(_map(behaviour, name).items()):
            share_keys.append(f"{share}{f.SHARE_KEY_SEPARATOR}{group}")
            share_values.append(value)
    history = sorted(_map(behaviour, d.USER_LEAD_EVENTS).items())
    token = f"{behaviour.event_ts or 0:.6f}|{geo.event_ts or 0:.6f}|{excluded_token}"
    return OnlineInputs(
        user=tuple(user),
        share_keys=tuple(share_keys),
        share_values=tuple(share_values),
        lead_ids=tuple(lead for lead, _ in history),
        lead_events=tuple(events for _, events in history),
        excluded=excluded,
        version_token=token,
    )


class OnlineFeatureReader:
    """Reads one user's online features and the unavailable leads for a model version."""

    def __init__(
        self,
        url: str,
        metrics: GatewayMetrics,
        timeout_seconds: float,
        clock: Callable[[], float] = time.time,
        mirror_entries: int = 0,
    ) -> None:
        self._redis = aioredis.Redis.from_url(
            url, socket_timeout=timeout_seconds, socket_connect_timeout=timeout_seconds
        )
        self.mirror = RowMirror(mirror_entries, watched=(keys.AVAILABILITY_SEQ,))
        self._tracking = Tracking(
            self._redis,
            self.mirror,
            tuple(f"{keys.PREFIX}:row:{name}:" for name in USER_VIEWS) + (keys.AVAILABILITY_SEQ,),
        )
        self._metrics = metrics
        self._clock = clock
        self._availability = _Availability()
        self._refresh_lock = asyncio.Lock()
        self._refused: set[tuple[tuple[str, int], ...]] = set()  # logged once each
        self._usable: dict[tuple[tuple[str, int], ...], dict[str, FeatureView] | None] = {}

    def start(self) -> None:
        """Starts keeping the mirror live (with ``mirror_entries`` > 0)."""
        self._tracking.start()

    async def close(self) -> None:
        await self._tracking.stop()
        await self._redis.aclose()

    def usable(self, model: ModelFeatures | None) -> dict[str, FeatureView] | None:
        """The user views to read for ``model``; None (counted, logged once) when the model
        has no online signature or wants view versions the store does not materialize."""
        if model is None:
            self._metrics.online_features.labels(Outcome.SNAPSHOT_MODEL).inc()
            return None
        key = tuple(sorted(model.views.items()))
        if key in self._usable:  # decided once per set of view versions, not per request
            views = self._usable[key]
            if views is None:
                self._metrics.online_features.labels(Outcome.INCOMPATIBLE).inc()
            return views
        wanted = {name: model.views[name] for name in USER_VIEWS if name in model.views}
        problems = REGISTRY.check_served(wanted)
        if problems or len(wanted) != len(USER_VIEWS):
            self._metrics.online_features.labels(Outcome.INCOMPATIBLE).inc()
            self._usable[key] = None
            if key not in self._refused:
                self._refused.add(key)
                log.error(
                    "not feeding online features to a model trained on %s: %s; it answers "
                    "from its snapshot until the store materializes those versions",
                    ", ".join(f"{n}:{v}" for n, v in key),
                    "; ".join(problems) or f"it lacks the views {', '.join(USER_VIEWS)}",
                )
            return None
        self._usable[key] = {name: REGISTRY.get(name, version) for name, version in wanted.items()}
        return self._usable[key]

    async def read(
        self, user_id: str, model: ModelFeatures, views: dict[str, FeatureView]
    ) -> OnlineInputs | None:
        """The user's online inputs for ``model``; None when the store cannot answer."""
        started = time.perf_counter()
        behaviour_view, geo_view = (views[name] for name in USER_VIEWS)
        row_keys = (
            keys.row(behaviour_view.name, behaviour_view.version, user_id),
            keys.row(geo_view.name, geo_view.version, user_id),
        )
        mirror = self.mirror
        raws = [mirror.get(key) for key in row_keys]
        # While the mirror is live, a change of the counter reaches it as an invalidation.
        epoch = mirror.epoch(keys.AVAILABILITY_SEQ)
        seq_known = mirror.live and self._availability.epoch == epoch
        wanted = [key for key, raw in zip(row_keys, raws, strict=True) if raw is None]
        tickets = [mirror.begin(key) for key in wanted]
        read: list[Any] = []
        try:
            if wanted or not seq_known:
                pipe = self._redis.pipeline(transaction=False)
                for key in wanted:
                    pipe.hgetall(key)
                if not seq_known:
                    pipe.get(keys.AVAILABILITY_SEQ)
                read = await pipe.execute()
                self._metrics.online_reads.labels("store").inc()
                if not seq_known:
                    if int(read[-1] or 0) != self._availability.seq:
                        await self._refresh_availability(epoch)
                    else:
                        self._availability.epoch = epoch
            else:
                self._metrics.online_reads.labels("memory").inc()
            fetched = iter(read)
            behaviour_raw, geo_raw = (next(fetched) if raw is None else raw for raw in raws)
            now = self._clock()
            behaviour = row_from_hash(behaviour_view, user_id, behaviour_raw, now)
            geo = row_from_hash(geo_view, user_id, geo_raw, now)
        except (RedisError, OSError, ValueError, KeyError) as e:
            self._metrics.online_features.labels(Outcome.STORE_ERROR).inc()
            log.debug("online store read failed for %s: %s", user_id, e)
            read = []
            return None
        finally:
            for i, (key, ticket) in enumerate(zip(wanted, tickets, strict=True)):
                mirror.keep(key, ticket, read[i] if i < len(read) else None)
            self._metrics.online_lookup.observe(time.perf_counter() - started)
        excluded, token = self._excluded(model)
        if not behaviour.found and not geo.found:
            outcome = Outcome.UNKNOWN
        elif behaviour.stale or geo.stale:
            outcome = Outcome.STALE
        else:
            outcome = Outcome.FOUND
        self._metrics.online_features.labels(outcome).inc()
        return inputs_from_rows(behaviour, geo, now, excluded, token)

    async def _refresh_availability(self, epoch: int) -> None:
        """Reads the unavailable set; ``epoch``: the mirror's epoch of the counter before it
        was read (an invalidation since makes the next request read the counter again)."""
        async with self._refresh_lock:
            pipe = self._redis.pipeline(transaction=True)
            pipe.get(keys.AVAILABILITY_SEQ)
            pipe.smembers(keys.UNAVAILABLE)
            seq, members = await pipe.execute()
            unavailable = frozenset(m.decode() for m in cast("set[bytes]", members))
            self._availability = _Availability(int(seq or 0), unavailable, epoch)
            self._metrics.unavailable_leads.set(len(unavailable))

    def _excluded(self, model: ModelFeatures) -> tuple[tuple[str, ...], str]:
        """The model's catalogue leads held unavailable, and a digest of them (kept per
        model version until the availability moves)."""
        availability = self._availability
        cached = availability.by_version.get(model.version)
        if cached is None:
            excluded = tuple(sorted(availability.unavailable & model.catalogue))
            digest = hashlib.sha256("\n".join(excluded).encode()).hexdigest()[:16]
            cached = (excluded, digest)
            availability.by_version[model.version] = cached
        return cached
