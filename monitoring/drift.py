"""Served-feature drift: the features of recent answers against the training statistics of
the model version that gave them (TFDV, with the pipeline's thresholds).

The pipeline's drift check writes the training positives' statistics of the served features
and a schema whose skew comparators carry its thresholds; `PublishReference` puts both next
to the pushed model, ``<base>/<version>/assets.extra/aiqleads_reference/``. The monitor keeps
the last ``window_seconds`` of impressions (one row per shown lead: the request's location
and the lead's region, type, price and location), and every ``interval_seconds`` computes,
per model version with at least ``min_rows`` rows, TFDV statistics of those rows and TFDV's
skew measurement against that version's reference: Jensen-Shannon divergence for numeric
features, L-infinity for categorical ones. It exports one gauge per feature
(``aiqleads_serving_feature_drift``) and its threshold; the rule
``AiqleadsServedFeatureDrift`` fires when one stays above its threshold.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import pathlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from aiqleads.events.records import Impression

log = logging.getLogger(__name__)
# Where the pipeline publishes a version's reference (components.drift_check.publish and
# spec: the monitoring layer does not import the components layer).
ASSETS_EXTRA = "assets.extra"  # aiqleads.tf_serving_warmup's (which imports TensorFlow)
REFERENCE_DIR = "aiqleads_reference"
REFERENCE_STATISTICS = "reference_statistics.pb"
REFERENCE_SCHEMA = "reference_schema.pbtxt"
OFFLINE_METRICS = "offline_metrics.json"  # the Evaluator's overall metrics of the version
HISTOGRAM_BUCKETS = 20  # as the drift check's statistics
MAX_ROWS = 50_000  # newest rows kept per version for one computation
JS, LINF = "jensen_shannon_divergence", "l_infinity"
LABELS = ("feature", "measure", "model_version")


@dataclasses.dataclass(frozen=True)
class FeatureDrift:
    feature: str
    measure: str
    value: float
    threshold: float


@dataclasses.dataclass(frozen=True)
class Reference:
    statistics: Any  # statistics_pb2.DatasetFeatureStatisticsList
    schema: Any  # schema_pb2.Schema with skew comparators

    @property
    def features(self) -> tuple[str, ...]:
        return tuple(
            f.name
            for f in self.schema.feature
            if f.skew_comparator.HasField("jensen_shannon_divergence")
            or f.skew_comparator.HasField("infinity_norm")
        )


def reference_path(model_base_path: pathlib.Path, version: int) -> pathlib.Path:
    return pathlib.Path(model_base_path) / str(version) / ASSETS_EXTRA / REFERENCE_DIR


def load_reference(model_base_path: pathlib.Path, version: int) -> Reference | None:
    """The published reference of ``version``, or None when it has none (yet)."""
    # TFDV and its protos load TensorFlow: imported when the first version is seen.
    import tensorflow_data_validation as tfdv
    from tensorflow_metadata.proto.v0 import statistics_pb2

    directory = reference_path(model_base_path, version)
    stats_path, schema_path = directory / REFERENCE_STATISTICS, directory / REFERENCE_SCHEMA
    if not (stats_path.is_file() and schema_path.is_file()):
        return None
    stats = statistics_pb2.DatasetFeatureStatisticsList.FromString(stats_path.read_bytes())
    return Reference(stats, tfdv.load_schema_text(str(schema_path)))


def load_offline_metrics(model_base_path: pathlib.Path, version: int) -> dict[str, float]:
    """The Evaluator's overall metrics published with ``version`` ({} when absent)."""
    path = reference_path(model_base_path, version) / OFFLINE_METRICS
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): float(v) for k, v in data.items() if isinstance(v, (int, float))}


def measure(rows: list[dict[str, Any]], reference: Reference) -> list[FeatureDrift]:
    """TFDV skew measurements of ``rows`` (served features) against ``reference``."""
    import pyarrow as pa
    import tensorflow_data_validation as tfdv
    from tensorflow_data_validation.statistics import stats_impl
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    features = [name for name in reference.features if any(name in r for r in rows)]
    if not features:
        return []
    arrays = []
    for name in features:
        values: list[list[Any] | None] = []
        for row in rows:
            v = row.get(name)
            if v is None or (isinstance(v, float) and v != v):
                values.append(None)
            elif isinstance(v, str):
                values.append([v.encode()])
            else:
                values.append([v])
        arrays.append(pa.array(values))
    batch = pa.RecordBatch.from_arrays(arrays, features)
    options = tfdv.StatsOptions(schema=reference.schema, num_histogram_buckets=HISTOGRAM_BUCKETS)
    served = stats_impl.generate_statistics_in_memory(batch, options)
    anomalies = tfdv.validate_statistics(
        reference.statistics, reference.schema, serving_statistics=served
    )
    names = {
        anomalies_pb2.DriftSkewInfo.Measurement.JENSEN_SHANNON_DIVERGENCE: JS,
        anomalies_pb2.DriftSkewInfo.Measurement.L_INFTY: LINF,
    }
    out = []
    for info in anomalies.drift_skew_info:
        feature = ".".join(info.path.step)
        for m in info.skew_measurements:
            if m.type in names and feature in features:
                out.append(FeatureDrift(feature, names[m.type], float(m.value), float(m.threshold)))
    return out


class ServedDrift:
    """Recent impressions per model version, and their drift from each version's reference."""

    def __init__(
        self,
        model_base_path: pathlib.Path | None,
        window_seconds: float,
        interval_seconds: float,
        min_rows: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.model_base_path = model_base_path
        self.window = window_seconds
        self.interval = interval_seconds
        self.min_rows = min_rows
        self.clock = clock
        self.lock = threading.Lock()
        # version -> deque of (ts, rows of one impression)
        self._recent: dict[int, collections.deque[tuple[float, list[dict[str, Any]]]]] = {}
        self._references: dict[int, Reference | None] = {}
        self.results: dict[int, tuple[int, list[FeatureDrift]]] = {}  # version -> (rows, drift)
        self.offline: dict[int, dict[str, float]] = {}  # served version -> offline metrics
        self.missing_reference: set[int] = set()
        self.errors = 0

    def add(self, imp: Impression) -> None:
        rows = imp.feature_rows()
        if not rows:
            return
        with self.lock:
            self._recent.setdefault(imp.model_version, collections.deque()).append((imp.ts, rows))

    def _window_rows(self, now: float) -> dict[int, list[dict[str, Any]]]:
        horizon = now - self.window
        out = {}
        with self.lock:
            for version, items in list(self._recent.items()):
                while items and items[0][0] < horizon:
                    items.popleft()
                if not items:
                    del self._recent[version]
                    continue
                rows = [row for _, rs in items for row in rs]
                out[version] = rows[-MAX_ROWS:]
        return out

    def _reference(self, version: int) -> Reference | None:
        if self._references.get(version) is None and self.model_base_path is not None:
            self._references[version] = load_reference(self.model_base_path, version)
        return self._references.get(version)

    def compute(self) -> None:
        """Recompute every version's drift over the window (a version without enough rows
        or without a published reference exports nothing)."""
        results: dict[int, tuple[int, list[FeatureDrift]]] = {}
        missing = set()
        offline = {}
        for version, rows in self._window_rows(self.clock()).items():
            if self.model_base_path is not None:
                offline[version] = self.offline.get(version) or load_offline_metrics(
                    self.model_base_path, version
                )
            if len(rows) < self.min_rows:
                continue
            reference = self._reference(version)
            if reference is None:
                missing.add(version)
                continue
            results[version] = (len(rows), measure(rows, reference))
        with self.lock:
            self.results, self.missing_reference, self.offline = results, missing, offline

    def run(self, stop: threading.Event) -> None:
        # TFDV (and TensorFlow under it) takes seconds to import: here, before the first
        # window is due, not in the first computation.
        import tensorflow_data_validation  # noqa: F401

        while not stop.wait(self.interval):
            try:
                self.compute()
            except Exception as e:  # noqa: BLE001 - a bad batch must not end the monitor
                self.errors += 1
                log.warning("served-feature drift failed: %s", e)


class DriftCollector(Collector):
    """Exports a `ServedDrift`'s latest results."""

    def __init__(self, drift: ServedDrift) -> None:
        self._drift = drift

    def collect(self) -> Iterator[Metric]:
        with self._drift.lock:
            results = dict(self._drift.results)
            missing = set(self._drift.missing_reference)
            offline = dict(self._drift.offline)
        value = GaugeMetricFamily(
            "aiqleads_serving_feature_drift",
            "Served features of the last window against the training statistics of the "
            "version that answered (TFDV: Jensen-Shannon or L-infinity)",
            labels=LABELS,
        )
        threshold = GaugeMetricFamily(
            "aiqleads_serving_feature_drift_threshold",
            "The pipeline's threshold for that feature",
            labels=LABELS,
        )
        rows = GaugeMetricFamily(
            "aiqleads_serving_drift_rows",
            "Shown leads in the window the drift was measured on",
            labels=("model_version",),
        )
        for version, (n, drifts) in sorted(results.items()):
            rows.add_metric([str(version)], n)
            for d in drifts:
                labels = [d.feature, d.measure, str(version)]
                value.add_metric(labels, d.value)
                threshold.add_metric(labels, d.threshold)
        no_reference = GaugeMetricFamily(
            "aiqleads_serving_drift_reference_missing",
            "1 for a served version without published training statistics",
            labels=("model_version",),
        )
        for version in sorted(missing):
            no_reference.add_metric([str(version)], 1.0)
        metrics = GaugeMetricFamily(
            "aiqleads_model_offline_metric",
            "The Evaluator's overall metric of each version in service (published with it)",
            labels=("model_version", "metric"),
        )
        for version, values in sorted(offline.items()):
            for name, v in sorted(values.items()):
                metrics.add_metric([str(version), name], v)
        yield value
        yield threshold
        yield rows
        yield no_reference
        yield metrics
        yield GaugeMetricFamily(
            "aiqleads_serving_drift_errors", "Failed drift computations", value=self._drift.errors
        )
