"""The online store's synchronous client: typed, versioned, event-time-guarded writes and
reads over Redis (`keys` has the layout).

The store is a Redis instance of its own: append-only persistence and no eviction, unlike
the answer cache's LRU (docs/feature_store.md says why). Every write is checked against the
view's schema (`values.validate`) and goes to every materialized version of the view, so
N and N-1 stay side by side during a rollout. The gateway reads with its own asynchronous
client (``serving/gateway/online_features.py``) over the same keys.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import cast

import redis
from redis.exceptions import RedisError

from aiqleads.errors import ServiceError
from aiqleads.events.log import redact
from aiqleads.features import keys, values
from aiqleads.features.definitions import (
    LEAD_ATTRIBUTES_V1,
    LEAD_STATUS,
    REGISTRY,
    UNAVAILABLE_STATUSES,
    USER,
    Entity,
    FeatureValue,
    FeatureView,
    Registry,
)
from aiqleads.features.user_state import UserState

ENTITY_SEPARATOR = ":"
LEAD_VIEW = LEAD_ATTRIBUTES_V1.name


class OnlineStoreError(ServiceError):
    """The online store could not be reached or refused a command; retry later."""


@dataclass(frozen=True)
class Row:
    """One entity's features of one view version, as a reader gets them."""

    view: FeatureView
    entity_id: str
    found: bool
    event_ts: float | None
    values: dict[str, FeatureValue]
    """Every feature of the view; a missing one has its default."""
    missing: tuple[str, ...] = ()
    """Features the stored row lacks (they read as their defaults)."""
    stale: bool = False
    """Older than the view's TTL: readers that feed models use the defaults instead."""


@dataclass
class EntityWrite:
    """One entity's new values (view name -> feature values) as of ``event_ts``."""

    entity: Entity
    entity_id: str
    rows: Mapping[str, Mapping[str, object]]
    event_ts: float
    state: UserState | None = None
    expect_event_ts: str = ""
    """Compare-and-set: write only when the guard row's stored _event_ts is exactly this
    (``"-"``: no stored row; ``""``: no compare-and-set, only the event-time guard)."""
    _checked: dict[str, dict[str, FeatureValue]] = field(default_factory=dict, repr=False)


def parse_entity(text: str, registry: Registry = REGISTRY) -> tuple[Entity, str]:
    """``user:u000001`` -> (USER, "u000001"); a ValueError naming the entities otherwise."""
    name, sep, entity_id = text.partition(ENTITY_SEPARATOR)
    entities = {v.entity.name: v.entity for v in registry.views}
    if not sep or not entity_id or name not in entities:
        raise ValueError(
            f"entity {text!r} must be <entity>:<id> with entity one of {sorted(entities)}, "
            "e.g. user:u000001 or lead:l000001"
        )
    return entities[name], entity_id


def row_from_hash(view: FeatureView, entity_id: str, raw: Mapping[bytes, bytes], now: float) -> Row:
    """A `Row` from a stored hash (``HGETALL``'s reply; empty: the entity is unknown)."""
    if not raw:
        return Row(view, entity_id, False, None, view.defaults(), view.names)
    event_raw = raw.get(keys.EVENT_TS.encode())
    event_ts = float(event_raw) if event_raw is not None else None
    out: dict[str, FeatureValue] = {}
    missing = []
    for feature in view.features:
        value = values.decode_or_none(feature, raw.get(feature.name.encode()))
        if value is None:
            missing.append(feature.name)
            value = feature.default
        out[feature.name] = value
    stale = (
        view.ttl_seconds is not None and event_ts is not None and now - event_ts > view.ttl_seconds
    )
    return Row(view, entity_id, True, event_ts, out, tuple(missing), stale)


class OnlineStore:
    """Reads and writes the online store (a dedicated Redis; see the module docstring)."""

    def __init__(
        self, url: str, registry: Registry = REGISTRY, timeout_seconds: float = 5.0
    ) -> None:
        self.url = url
        self.registry = registry
        self._redis = redis.Redis.from_url(
            url, socket_timeout=timeout_seconds, socket_connect_timeout=timeout_seconds
        )
        self._write = self._redis.register_script(keys.WRITE_ENTITY)

    def close(self) -> None:
        self._redis.close()

    @property
    def client(self) -> redis.Redis:
        return self._redis

    def ping(self) -> None:
        try:
            self._redis.ping()
        except RedisError as e:
            raise OnlineStoreError(f"online store {redact(self.url)} is unreachable: {e}") from e

    # -- writes ------------------------------------------------------------------------------
    def check(self, write: EntityWrite) -> EntityWrite:
        """Validate ``write``'s values against its views (FeatureTypeError on a bad value or
        an unknown feature); returns it ready to write."""
        for name, given in write.rows.items():
            view = self.registry.latest(name)
            if view.entity != write.entity:
                raise values.FeatureTypeError(
                    f"view {name} describes {view.entity.name}s, not {write.entity.name}s"
                )
            known = {f.name for v in self.registry.materialized(name) for f in v.features}
            unknown = sorted(set(given) - known)
            if unknown:
                raise values.FeatureTypeError(
                    f"{view.ref} has no feature(s) {unknown}; its features: {list(view.names)}"
                )
            checked: dict[str, FeatureValue] = {}
            for version in self.registry.materialized(name):
                for feature in version.features:
                    if feature.name in given and feature.name not in checked:
                        checked[feature.name] = values.validate(
                            version, feature, given[feature.name]
                        )
            write._checked[name] = checked
        return write

    def _script_args(self, write: EntityWrite) -> tuple[list[str], list[str]]:
        hashes: list[tuple[str, list[str]]] = []
        if write.state is not None:
            hashes.append((keys.state(write.entity_id), [keys.STATE_FIELD, write.state.dumps()]))
        available = ""
        for name, checked in write._checked.items():
            for version in self.registry.materialized(name):
                pairs: list[str] = []
                for feature in version.features:
                    text = values.encode(feature, checked.get(feature.name))
                    if text is not None:
                        pairs += [feature.name, text]
                hashes.append((keys.row(name, version.version, write.entity_id), pairs))
            status = checked.get(LEAD_STATUS)
            if name == LEAD_VIEW and isinstance(status, str):
                available = "0" if status in UNAVAILABLE_STATUSES else "1"
        key_list = [k for k, _ in hashes]
        if available:
            key_list += [keys.UNAVAILABLE, keys.AVAILABILITY_SEQ, keys.AVAILABILITY_LOG]
        args = [repr(float(write.event_ts)), write.expect_event_ts, available, write.entity_id]
        args.append(str(len(hashes)))
        for _, pairs in hashes:
            args += [str(len(pairs) // 2), *pairs]
        return key_list, args

    def write(self, write: EntityWrite) -> bool:
        """Write one entity (validated); False when a newer row was stored already."""
        keys_, args = self._script_args(self.check(write))
        try:
            return bool(self._write(keys=keys_, args=args))
        except RedisError as e:
            raise OnlineStoreError(f"online store refused a write: {e}") from e

    def write_many(self, writes: Iterable[EntityWrite]) -> list[bool]:
        """Write many entities in one pipelined round trip; which ones were written."""
        pipe = self._redis.pipeline(transaction=False)
        count = 0
        for write in writes:
            keys_, args = self._script_args(self.check(write))
            self._write(keys=keys_, args=args, client=pipe)
            count += 1
        if not count:
            return []
        try:
            return [bool(r) for r in pipe.execute()]
        except RedisError as e:
            raise OnlineStoreError(f"online store refused a batch of writes: {e}") from e

    def put(
        self,
        entity: Entity,
        entity_id: str,
        view_name: str,
        changes: Mapping[str, object],
        event_ts: float | None = None,
    ) -> Row:
        """The update path of listings and market data: merge ``changes`` into the entity's
        row of ``view_name`` (every materialized version), validated; returns the new row.

        User views are written by materialization and the streaming updater only (their
        values follow from the fold state); a put to one is refused.
        """
        if entity == USER:
            raise values.FeatureTypeError(
                f"{view_name} is derived from user events: it is written by `aiqleads features "
                "materialize` and the streaming updater, not put"
            )
        now = time.time() if event_ts is None else event_ts
        current = self.read(view_name, entity_id, now=now)
        merged: dict[str, object] = {
            k: v for k, v in current.values.items() if k not in current.missing
        }
        merged.update(changes)
        stamp = max(now, current.event_ts or 0.0)
        self.write(EntityWrite(entity, entity_id, {view_name: merged}, stamp))
        return self.read(view_name, entity_id, now=now)

    def set_meta(self, view: FeatureView, as_of: str, rows: int) -> None:
        try:
            self._redis.hset(
                keys.meta(view.name, view.version),
                mapping={
                    keys.META_MATERIALIZED_AT: repr(time.time()),
                    keys.META_AS_OF: as_of,
                    keys.META_ROWS: str(rows),
                },
            )
        except RedisError as e:
            raise OnlineStoreError(f"online store refused metadata: {e}") from e

    # -- reads -------------------------------------------------------------------------------
    def read(
        self,
        view_name: str,
        entity_id: str,
        version: int | None = None,
        now: float | None = None,
    ) -> Row:
        view = (
            self.registry.latest(view_name)
            if version is None
            else self.registry.get(view_name, version)
        )
        try:
            raw = cast(
                "dict[bytes, bytes]",
                self._redis.hgetall(keys.row(view.name, view.version, entity_id)),
            )
        except RedisError as e:
            raise OnlineStoreError(f"cannot read {view.ref} of {entity_id}: {e}") from e
        return row_from_hash(view, entity_id, raw, time.time() if now is None else now)

    def read_entity(self, entity: Entity, entity_id: str, now: float | None = None) -> list[Row]:
        """Every materialized version of every view of the entity."""
        return [
            self.read(view.name, entity_id, view.version, now)
            for name in self.registry.for_entity(entity)
            for view in self.registry.materialized(name)
        ]

    def read_state(self, user_id: str) -> tuple[UserState | None, str]:
        """The user's fold state and its row's _event_ts (``""`` when none)."""
        try:
            raw = cast("dict[bytes, bytes]", self._redis.hgetall(keys.state(user_id)))
        except RedisError as e:
            raise OnlineStoreError(f"cannot read the state of {user_id}: {e}") from e
        if not raw:
            return None, ""
        return UserState.loads(raw[keys.STATE_FIELD.encode()]), raw[keys.EVENT_TS.encode()].decode()

    def read_states(self, user_ids: list[str]) -> list[tuple[UserState | None, str]]:
        pipe = self._redis.pipeline(transaction=False)
        for user_id in user_ids:
            pipe.hgetall(keys.state(user_id))
        try:
            replies = cast("list[dict[bytes, bytes]]", pipe.execute())
        except RedisError as e:
            raise OnlineStoreError(f"cannot read user states: {e}") from e
        out: list[tuple[UserState | None, str]] = []
        for raw in replies:
            if raw:
                out.append(
                    (
                        UserState.loads(raw[keys.STATE_FIELD.encode()]),
                        raw[keys.EVENT_TS.encode()].decode(),
                    )
                )
            else:
                out.append((None, ""))
        return out

    def read_rows(self, view: FeatureView, entity_ids: list[str], now: float) -> list[Row]:
        pipe = self._redis.pipeline(transaction=False)
        for entity_id in entity_ids:
            pipe.hgetall(keys.row(view.name, view.version, entity_id))
        try:
            replies = cast("list[dict[bytes, bytes]]", pipe.execute())
        except RedisError as e:
            raise OnlineStoreError(f"cannot read {view.ref} rows: {e}") from e
        return [
            row_from_hash(view, i, raw, now) for i, raw in zip(entity_ids, replies, strict=True)
        ]

    def meta(self, view: FeatureView) -> dict[str, str]:
        try:
            raw = cast(
                "dict[bytes, bytes]", self._redis.hgetall(keys.meta(view.name, view.version))
            )
        except RedisError as e:
            raise OnlineStoreError(f"cannot read the metadata of {view.ref}: {e}") from e
        return {k.decode(): v.decode() for k, v in raw.items()}

    def unavailable(self) -> tuple[int, set[str]]:
        """(availability sequence number, every lead the store holds unavailable)."""
        pipe = self._redis.pipeline(transaction=True)
        pipe.get(keys.AVAILABILITY_SEQ)
        pipe.smembers(keys.UNAVAILABLE)
        try:
            seq, members = pipe.execute()
        except RedisError as e:
            raise OnlineStoreError(f"cannot read lead availability: {e}") from e
        return int(seq or 0), {m.decode() for m in members}
