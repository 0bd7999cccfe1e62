"""All Prometheus metrics of the model server, in one registry owned by the server.

TF Serving's names where they exist (`:tensorflow:serving:request_count`, counted per model
and status, exposed without the `_total` suffix as TF Serving does;
`:tensorflow:serving:model_warmup_latency` in microseconds with TF Serving's buckets), plus
our latency, batch-size and warm-up record metrics.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import Metric

from serving.model_server.warmup import WarmupResult

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
# The calls TF Serving counts in request_count (its gRPC MultiInference is not counted).
INFERENCE_APIS = frozenset({"predict", "classify", "regress"})
# TF Serving's warm-up latency buckets: 10 us * 1.8^i, 33 of them (about 20 minutes).
WARMUP_BUCKETS_MICROS = tuple(10 * 1.8**i for i in range(33))


class _RequestCountCollector:
    """`:tensorflow:serving:request_count{model_name, status}` as TF Serving exports it."""

    def __init__(self) -> None:
        self._counts: collections.Counter[tuple[str, str]] = collections.Counter()
        self._lock = threading.Lock()

    def inc(self, model: str, status: str) -> None:
        with self._lock:
            self._counts[(model, status)] += 1

    def collect(self) -> Iterator[Metric]:
        metric = Metric(
            ":tensorflow:serving:request_count", "The total number of requests.", "counter"
        )
        with self._lock:
            items = sorted(self._counts.items())
        for (model, status), count in items:
            metric.add_sample(
                ":tensorflow:serving:request_count",
                {"model_name": model, "status": status},
                count,
            )
        yield metric


class ServerMetrics:
    """The server's metrics; `render()` gives the Prometheus text exposition."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._requests = _RequestCountCollector()
        self.registry.register(self._requests)
        self.latency = Histogram(
            "aiqleads_model_server_request_latency_seconds",
            "Time to answer a request, by API and transport.",
            ["api", "transport"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "aiqleads_model_server_batch_size",
            "Rows per model execution when batching is on.",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.model_versions = Gauge(
            "aiqleads_model_server_available_versions",
            "Versions currently available, per model.",
            ["model_name"],
            registry=self.registry,
        )
        self.warmup_latency = Histogram(
            ":tensorflow:serving:model_warmup_latency",
            "Distribution of wall time (in microseconds) for warming up the model.",
            ["model_path", "status"],
            buckets=WARMUP_BUCKETS_MICROS,
            registry=self.registry,
        )
        self.warmup_records = Counter(
            "aiqleads_model_server_warmup_records",
            "Warm-up records replayed successfully at load time, per model.",
            ["model_name"],
            registry=self.registry,
        )

    def observe_warmup(self, model: str, version: int, result: WarmupResult) -> None:
        """Record one version's warm-up (`warmup.WarmupResult`), failed or not."""
        self.warmup_latency.labels(str(result.path.parent.parent), result.code.name).observe(
            result.seconds * 1e6
        )
        self.warmup_records.labels(model).inc(result.records)

    def observe(self, api: str, transport: str, model: str, status: str, seconds: float) -> None:
        if api in INFERENCE_APIS:  # TF Serving counts inference calls only, not status polls
            self._requests.inc(model, status)
        self.latency.labels(api, transport).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
