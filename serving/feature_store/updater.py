"""The updater process's work: a materialization at start when the store lacks one of the
data set's newest complete span, then the streaming updates (`aiqleads.features.streaming`)
with their metrics."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from aiqleads.errors import DataError
from aiqleads.events.log import EventLog
from aiqleads.features import definitions as d
from aiqleads.features.keys import META_AS_OF
from aiqleads.features.materialize import default_as_of, materialize
from aiqleads.features.online import OnlineStore, OnlineStoreError
from aiqleads.features.streaming import StreamStats, StreamUpdater
from serving.feature_store.config import UpdaterConfig
from serving.feature_store.metrics import UpdaterMetrics

log = logging.getLogger(__name__)
STARTUP_RETRY_SECONDS = 30.0  # the store may still be loading its append-only file


class Updater:
    def __init__(self, config: UpdaterConfig, events: EventLog, metrics: UpdaterMetrics) -> None:
        self.config, self.metrics = config, metrics
        self.store = OnlineStore(config.online_store_url)
        self.events = events
        self._stream: StreamUpdater | None = None

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
        self.store.close()

    def _wait_for_store(self) -> None:
        deadline = time.monotonic() + STARTUP_RETRY_SECONDS
        while True:
            try:
                self.store.ping()
                self.metrics.up.set(1)
                return
            except OnlineStoreError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def materialize_if_needed(self, say: Callable[[str], None]) -> None:
        """Materialize ``data_dir`` when no view version holds its newest complete span."""
        self._wait_for_store()
        if self.config.data_dir is None:
            return
        try:
            day = default_as_of(self.config.data_dir)
        except DataError as e:
            say(f"features: nothing to materialize ({e})")
            return
        done = [
            self.store.meta(v).get(META_AS_OF)
            for name in d.REGISTRY.names
            for v in d.REGISTRY.materialized(name)
        ]
        if all(as_of == day.isoformat() for as_of in done):
            say(f"features: the store holds the materialization as of {day}")
            return
        summary = materialize(self.store, self.config.data_dir, day)
        for entity, rows in (
            ("user", summary.users),
            ("lead", summary.leads),
            ("region", summary.regions),
        ):
            self.metrics.materialized_rows.labels(entity).set(rows)
        say(
            f"features: materialized {self.config.data_dir} as of {day}: {summary.rows:,} "
            f"rows from {summary.events:,} events in {summary.seconds:.1f} s"
        )

    def run(self, stop: threading.Event) -> None:
        self._stream = StreamUpdater(
            self.events,
            self.store,
            consumer=self.config.consumer,
            batch=self.config.batch,
            block_ms=self.config.block_ms,
        )
        m = self.metrics
        seen = StreamStats()

        def on_error(error: Exception) -> None:
            m.errors.inc()
            m.up.set(0)
            log.warning("features: %s; retrying", error)

        def on_round(stats: StreamStats) -> None:
            m.up.set(1)
            m.entries.labels("applied").inc(stats.applied - seen.applied)
            m.entries.labels("skipped").inc(stats.skipped - seen.skipped)
            m.entries.labels("undecodable").inc(stats.undecodable - seen.undecodable)
            m.users.inc(stats.users_written - seen.users_written)
            for lag in stats.lag_seconds:
                m.lag.observe(lag)
            stats.lag_seconds.clear()
            seen.applied, seen.skipped = stats.applied, stats.skipped
            seen.undecodable, seen.users_written = stats.undecodable, stats.users_written

        self._stream.run(stop, on_error, on_round)
