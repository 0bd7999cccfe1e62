"""Streaming updates: the event log's feedback folded into users' online features as it
arrives (views, clicks, inquiries, purchases reach the store within a second or so).

The updater reads ``aiqleads:events:feedback`` through a consumer group of its own
(``features``; ingestion has ``ingest``, the monitor reads without a group), so every
feedback reaches it at least once. Each user's state in the store remembers the last entry
applied and its watermark (the event time its materialized part covers), so a redelivered
entry, or an event a materialization already counted, is not counted twice. The lead of each
event is read from the online store's lead rows (its coordinates, price, type and region).
Writes are compare-and-set on the state's event time: a materialization that lands in
between makes the updater re-read and fold again.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

import redis
from redis.exceptions import RedisError

from aiqleads.events.log import Entry, EventLog, EventLogError
from aiqleads.events.records import FEEDBACK_STREAM, RECORD_FIELD, Feedback
from aiqleads.features import definitions as d
from aiqleads.features.materialize import user_write
from aiqleads.features.online import OnlineStore, OnlineStoreError, Row
from aiqleads.features.user_state import LeadInfo, UserState, entry_after

GROUP = "features"
"""The updater's consumer group on the feedback stream (not ``ingest``, the ingestion's)."""
CAS_RETRIES = 3
log = logging.getLogger(__name__)


@dataclass
class StreamStats:
    entries: int = 0
    applied: int = 0
    skipped: int = 0  # already in the state (redelivered, or materialized)
    undecodable: int = 0
    users_written: int = 0
    lag_seconds: list[float] = field(default_factory=list)  # event accepted -> written


def lead_info(row: Row) -> LeadInfo:
    def number(name: str) -> float:
        value = row.values.get(name)
        return float(value) if isinstance(value, int | float) else math.nan

    return LeadInfo(
        latitude=number(d.LEAD_LATITUDE),
        longitude=number(d.LEAD_LONGITUDE),
        price=number(d.LEAD_PRICE),
        property_type=str(row.values.get(d.LEAD_PROPERTY_TYPE) or ""),
        region=str(row.values.get(d.LEAD_REGION) or ""),
    )


class StreamUpdater:
    """Folds new feedback into the online store, one batch of stream entries at a time."""

    def __init__(
        self,
        events: EventLog,
        store: OnlineStore,
        consumer: str = "updater",
        batch: int = 256,
        block_ms: int = 500,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.events, self.store = events, store
        self.consumer, self.batch, self.block_ms = consumer, batch, block_ms
        self.stats = StreamStats()
        self._clock = clock
        self._pending = True  # first, entries this consumer was given and did not acknowledge
        # Blocking reads on a connection of their own, with a timeout beyond the block.
        self._blocking = redis.Redis.from_url(
            events.url, socket_timeout=block_ms / 1000 + 5, socket_connect_timeout=5
        )
        events.ensure_group(FEEDBACK_STREAM, GROUP)

    def close(self) -> None:
        self._blocking.close()

    def run_once(self) -> int:
        """Read, fold, write and acknowledge one batch; how many entries it held."""
        if self._pending:
            entries = self.events.read_group(
                FEEDBACK_STREAM, GROUP, self.consumer, self.batch, pending=True
            )
            if not entries:
                self._pending = False
        if not self._pending:
            entries = self._read_new()
        if not entries:
            return 0
        feedback: list[tuple[str, Feedback]] = []
        for entry in entries:
            try:
                feedback.append((entry.entry_id, Feedback.decode(entry.raw)))
            except (ValueError, TypeError, KeyError):
                self.stats.undecodable += 1
        self.apply(feedback)
        self.events.ack(FEEDBACK_STREAM, GROUP, [e.entry_id for e in entries])
        self.stats.entries += len(entries)
        return len(entries)

    def _read_new(self) -> list[Entry]:
        """New entries for this consumer, waiting up to ``block_ms`` for the first."""
        try:
            rows = cast(
                "list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]] | None",
                self._blocking.xreadgroup(
                    GROUP, self.consumer, {FEEDBACK_STREAM: ">"}, self.batch, self.block_ms
                ),
            )
        except RedisError as e:
            raise EventLogError(f"cannot read {FEEDBACK_STREAM} as {GROUP}: {e}") from e
        return [
            Entry(entry_id.decode(), fields[RECORD_FIELD.encode()])
            for _, entries in rows or []
            for entry_id, fields in entries
            if fields
        ]

    def apply(self, feedback: list[tuple[str, Feedback]]) -> None:
        """Fold (entry id, feedback) pairs into their users' states and write them."""
        by_user: dict[str, list[tuple[str, Feedback]]] = {}
        for entry_id, item in feedback:
            by_user.setdefault(item.user_id, []).append((entry_id, item))
        lead_view = d.REGISTRY.latest(d.LEAD_ATTRIBUTES_V1.name)
        lead_ids = sorted({item.lead_id for _, item in feedback})
        leads = {
            row.entity_id: lead_info(row)
            for row in self.store.read_rows(lead_view, lead_ids, self._clock())
        }
        pending = sorted(by_user)
        for _ in range(CAS_RETRIES):
            if not pending:
                break
            pending = self._write_users(pending, by_user, leads)
        if pending:
            log.warning("features: %d users changed under the updater; next batch", len(pending))

    def _write_users(
        self,
        users: list[str],
        by_user: dict[str, list[tuple[str, Feedback]]],
        leads: dict[str, LeadInfo],
    ) -> list[str]:
        """Fold and write; the users whose state changed meanwhile (to try again)."""
        states = self.store.read_states(users)
        writes, written_users = [], []
        for user_id, (state, stamp) in zip(users, states, strict=True):
            state = state or UserState()
            changed = False
            for entry_id, item in by_user[user_id]:
                if not entry_after(entry_id, state.last_entry) or item.ts < state.watermark:
                    self.stats.skipped += 1
                    continue
                lead = leads.get(item.lead_id, LeadInfo())
                state.apply(item.event_type, item.ts, item.lead_id, lead)
                state.last_entry = entry_id
                self.stats.applied += 1
                changed = True
            if not changed:
                continue
            event_ts = max(float(stamp or 0.0), state.last_ts or 0.0)
            write = user_write(user_id, state, event_ts)
            write.expect_event_ts = stamp or "-"  # "-": the state must still be absent
            writes.append(write)
            written_users.append(user_id)
        if not writes:
            return []
        results = self.store.write_many(writes)
        now = self._clock()
        retry = []
        for user_id, ok in zip(written_users, results, strict=True):
            if ok:
                self.stats.users_written += 1
                self.stats.lag_seconds.extend(now - f.ts for _, f in by_user[user_id])
            else:
                retry.append(user_id)
        return retry

    def run(
        self,
        stop: threading.Event,
        on_error: Callable[[Exception], None] | None = None,
        on_round: Callable[[StreamStats], None] | None = None,
    ) -> None:
        """Follow the stream until ``stop`` is set; a store or log outage is retried with a
        doubling backoff (``on_error`` hears of it); ``on_round`` sees the stats after each
        round."""
        backoff = 0.2
        while not stop.is_set():
            try:
                self.run_once()
                backoff = 0.2
            except (EventLogError, OnlineStoreError) as e:
                if on_error is not None:
                    on_error(e)
                stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
            if on_round is not None:
                on_round(self.stats)
