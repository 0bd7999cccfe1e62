"""The online-quality monitor: follows the event log and exports per-arm counters.

It reads both streams from where the attribution window began (so a restart rebuilds the
join of feedback to answers), then follows them with blocking reads. Prometheus scrapes
counters, not rates: CTR is ``rate(aiqleads_online_events_total{event_type="click"}) /
rate(aiqleads_online_impressions_total)`` over any range, per model version and variant.
Counters count from the start of the replayed window, so they restart with the process, as
Prometheus counters may.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from aiqleads.events.log import EventLog, EventLogError, entry_id_at
from aiqleads.events.quality import OnlineQuality
from aiqleads.events.records import FEEDBACK_STREAM, IMPRESSIONS_STREAM, Feedback, Impression

log = logging.getLogger(__name__)
ARM_LABELS = ("model_version", "variant")
MAX_BACKOFF_SECONDS = 5.0


class QualityCollector(Collector):
    """Exposes an `OnlineQuality` (read under its lock) as Prometheus metrics."""

    def __init__(self, monitor: OnlineMonitor) -> None:
        self._monitor = monitor

    def collect(self) -> Iterator:
        m = self._monitor
        with m.lock:
            arms = {arm: counts for arm, counts in m.quality.arms.items()}
            families = {
                "impressions": CounterMetricFamily(
                    "aiqleads_online_impressions", "Answers logged", labels=ARM_LABELS
                ),
                "shown": CounterMetricFamily(
                    "aiqleads_online_shown_items",
                    "Leads shown in logged answers",
                    labels=ARM_LABELS,
                ),
                "events": CounterMetricFamily(
                    "aiqleads_online_events",
                    "Feedback within the attribution window, by type",
                    labels=(*ARM_LABELS, "event_type"),
                ),
                "hits": CounterMetricFamily(
                    "aiqleads_online_hits",
                    "Answers with an engagement (click or stronger) within the window",
                    labels=ARM_LABELS,
                ),
                "engaged": CounterMetricFamily(
                    "aiqleads_online_engaged_items",
                    "Distinct (answer, lead) pairs engaged with within the window",
                    labels=ARM_LABELS,
                ),
                "users": GaugeMetricFamily(
                    "aiqleads_online_users",
                    "Distinct users with a logged answer",
                    labels=ARM_LABELS,
                ),
            }
            for (version, variant), c in sorted(arms.items()):
                labels = [str(version), variant]
                families["impressions"].add_metric(labels, c.impressions)
                families["shown"].add_metric(labels, c.shown_items)
                families["hits"].add_metric(labels, c.hits)
                families["engaged"].add_metric(labels, c.engaged_items)
                families["users"].add_metric(labels, len(c.users))
                for event, n in sorted(c.events.items()):
                    families["events"].add_metric([*labels, event], n)
            yield from families.values()
            yield CounterMetricFamily(
                "aiqleads_online_unmatched_feedback",
                "Feedback whose answer was never logged within the window",
                value=m.quality.unmatched_feedback,
            )
            yield CounterMetricFamily(
                "aiqleads_online_feedback_outside_window",
                "Feedback reported after the attribution window",
                value=m.quality.outside_window,
            )
            yield GaugeMetricFamily(
                "aiqleads_online_last_event_timestamp_seconds",
                "Time of the newest record the monitor has processed",
                value=m.quality.last_ts,
            )
            yield GaugeMetricFamily(
                "aiqleads_monitor_event_store_up",
                "1 when the last read of the event log succeeded",
                value=1.0 if m.store_up else 0.0,
            )
            yield CounterMetricFamily(
                "aiqleads_monitor_read_errors", "Failed reads of the event log", value=m.errors
            )


class OnlineMonitor:
    """Follows the event log into an `OnlineQuality`; thread-safe reads through `lock`."""

    def __init__(
        self,
        event_log: EventLog,
        window_seconds: float,
        block_ms: int = 500,
        clock: Callable[[], float] = time.time,
        on_impression: Callable[[Impression], None] | None = None,
    ) -> None:
        self.log = event_log
        self.on_impression = on_impression  # e.g. the served-feature drift (monitoring.drift)
        self.quality = OnlineQuality(window_seconds)
        self.block_ms = block_ms
        self.clock = clock
        self.lock = threading.Lock()
        self.store_up = False
        self.errors = 0
        self._cursor: dict[str, str] = {}
        self.registry = CollectorRegistry()
        self.registry.register(QualityCollector(self))

    def _apply(self, stream: str, raw: bytes) -> None:
        try:
            if stream == IMPRESSIONS_STREAM:
                impression = Impression.decode(raw)
                self.quality.add_impression(impression)
                if self.on_impression is not None:
                    self.on_impression(impression)
            else:
                self.quality.add_feedback(Feedback.decode(raw))
        except (ValueError, TypeError, KeyError) as e:
            log.warning("skipped an unreadable %s record: %s", stream, e)

    def replay(self) -> None:
        """Read the window's history (impressions first, so feedback joins at once)."""
        start = entry_id_at(self.clock() - self.quality.window)
        for stream in (IMPRESSIONS_STREAM, FEEDBACK_STREAM):
            last = start
            for entry in self.log.range(stream, start=start):
                with self.lock:
                    self._apply(stream, entry.raw)
                last = entry.entry_id
            self._cursor[stream] = last  # XREAD continues after it: nothing is skipped

    def step(self) -> int:
        """One blocking read of both streams; how many records it applied."""
        batches = self.log.read_new(dict(self._cursor), block_ms=self.block_ms)
        applied = 0
        with self.lock:
            # Impressions before feedback within a step: a feedback then finds its answer.
            for stream in (IMPRESSIONS_STREAM, FEEDBACK_STREAM):
                for entry in batches.get(stream, []):
                    self._apply(stream, entry.raw)
                    self._cursor[stream] = entry.entry_id
                    applied += 1
            self.quality.expire(self.clock())
        return applied

    def run(self, stop: threading.Event) -> None:
        """Replay, then follow until ``stop``; a store outage is retried with backoff."""
        backoff = 0.0
        replayed = False
        while not stop.is_set():
            try:
                if not replayed:
                    self.replay()
                    replayed = True
                self.step()
                self.store_up, backoff = True, 0.0
            except EventLogError as e:
                self.store_up = False
                self.errors += 1
                backoff = min(max(backoff * 2, 0.25), MAX_BACKOFF_SECONDS)
                log.warning("event log unavailable (%s); retrying in %.2f s", e, backoff)
                stop.wait(backoff)
