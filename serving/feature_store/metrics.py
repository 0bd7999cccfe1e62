"""Every Prometheus metric of the streaming updater, in one registry per process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

READY = "aiqleads_features_updater_ready"
LAG_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class UpdaterMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.entries = Counter(
            "aiqleads_features_stream_entries",
            "Feedback entries read by the updater, by outcome (applied, skipped: already "
            "counted, undecodable).",
            ("outcome",),
            registry=r,
        )
        self.users = Counter(
            "aiqleads_features_stream_users_written",
            "User rows written by the updater.",
            registry=r,
        )
        self.lag = Histogram(
            "aiqleads_features_stream_lag_seconds",
            "From a feedback's acceptance by a gateway to its user's features written.",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.errors = Counter(
            "aiqleads_features_stream_errors",
            "Rounds that failed (store or log unreachable) and were retried.",
            registry=r,
        )
        self.materialized_rows = Gauge(
            "aiqleads_features_materialized_rows",
            "Entities of the last materialization this process ran, by entity.",
            ("entity",),
            registry=r,
        )
        self.ready = Gauge(
            READY,
            "0 while the updater materializes its data set at start, 1 once it streams.",
            registry=r,
        )
        self.up = Gauge(
            "aiqleads_features_online_store_up", "1 when the online store answers.", registry=r
        )
