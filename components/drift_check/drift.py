"""Pure drift/skew logic: per-span statistics, TFDV comparators, a readable report.

Drift compares the newest span of the window with the span before it; skew compares the
training data with features logged by serving (when a log directory is configured).
Numeric features use the Jensen-Shannon divergence, categorical ones the L-infinity
distance, each with a threshold from the config. A feature above its threshold is a
violation; any violation fails the check.

Not every violation stops a run. A *population shift* (the mix of where users are and what
they look at moving: `Thresholds.population`) is what a drift alert asks to retrain on, so
in a run whose reason is an alert (``drift:...`` or ``quality:...``, `retrains_on_shift`)
it is recorded and does not block; a *data bug* (a unit change in prices, a broken event
feed in the engagement mix, any other feature) blocks every run. A run without such a reason
(the schedule, a manual run) treats every violation as blocking.

A distribution of prices over all regions hides one region re-pricing, so drift also
measures each region's market median price: the move from the previous span in log,
times the square root of the region's inventory (the smaller of the two days'). A median of
n prices wanders about 1/sqrt(n), so this puts a region of 5 leads and one of 50 on one
scale; the largest score over the regions is compared with its threshold.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import tensorflow_data_validation as tfdv
from tensorflow_data_validation.statistics import stats_impl
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2, statistics_pb2

from aiqleads.events.records import LEAD_FEATURES, REQUEST_FEATURES
from transforms import features as f

DRIFT = "drift"
SKEW = "skew"
JS = "jensen_shannon_divergence"
LINF = "l_infinity"
MEDIAN_SHIFT = "regional_median_shift"  # |d log median price| x sqrt(inventory), worst region
# Run reasons that come from an alert asking for retraining (monitoring.trigger_state).
ALERT_REASON_PREFIXES = ("drift:", "quality:")
_MEASURE_NAMES = {
    anomalies_pb2.DriftSkewInfo.Measurement.JENSEN_SHANNON_DIVERGENCE: JS,
    anomalies_pb2.DriftSkewInfo.Measurement.L_INFTY: LINF,
}


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """Which features to compare and how far each may move (feature -> threshold).

    ``numeric`` features use the Jensen-Shannon divergence, ``categorical`` ones the
    L-infinity distance between the value frequencies.
    """

    numeric: dict[str, float]
    categorical: dict[str, float]
    regional_median_shift: float | None = None  # None: not measured
    # Features whose shifts an alert-triggered run retrains on (pipeline.config's default).
    population: tuple[str, ...] = ()

    @property
    def features(self) -> tuple[str, ...]:
        return tuple(self.numeric) + tuple(self.categorical)


@dataclasses.dataclass(frozen=True)
class Measurement:
    """One feature compared across two data sets."""

    kind: str  # drift | skew
    feature: str
    measure: str  # jensen_shannon_divergence | l_infinity
    value: float
    threshold: float

    @property
    def violated(self) -> bool:
        return self.value > self.threshold


def retrains_on_shift(reason: str) -> bool:
    """True for a run started by an alert that asks for retraining (``drift:``/``quality:``)."""
    return reason.startswith(ALERT_REASON_PREFIXES)


@dataclasses.dataclass(frozen=True)
class DriftReport:
    """The outcome: what was compared with what, every measurement, and the verdict."""

    current_span: str
    previous_span: str | None
    serving_records: int
    measurements: tuple[Measurement, ...]
    trigger_reason: str = ""
    population: tuple[str, ...] = ()  # features whose shifts do not block this run

    @property
    def shifts(self) -> tuple[Measurement, ...]:
        """Violations on population features in a run that retrains on them: recorded only."""
        if not retrains_on_shift(self.trigger_reason):
            return ()
        return tuple(m for m in self.measurements if m.violated and m.feature in self.population)

    @property
    def violations(self) -> tuple[Measurement, ...]:
        """The violations that block the run."""
        shifts = set(self.shifts)
        return tuple(m for m in self.measurements if m.violated and m not in shifts)

    @property
    def passed(self) -> bool:
        return not self.violations

    @property
    def reason(self) -> str:
        """One line naming every violation (empty when the check passed)."""
        return "; ".join(
            f"{m.kind} on {m.feature}: {m.measure} {m.value:.3f} > {m.threshold:.3f}"
            for m in self.violations
        )

    def to_json(self) -> str:
        body = {
            "passed": self.passed,
            "reason": self.reason,
            "trigger_reason": self.trigger_reason,
            "population": list(self.population),
            "population_shifts": [f"{m.kind} on {m.feature}" for m in self.shifts],
            "current_span": self.current_span,
            "previous_span": self.previous_span,
            "serving_records": self.serving_records,
            "measurements": [
                {**dataclasses.asdict(m), "violated": m.violated} for m in self.measurements
            ],
        }
        return json.dumps(body, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> DriftReport:
        """The report `to_json` wrote (its derived fields, ``passed`` and ``reason``, are
        recomputed from the measurements)."""
        body = json.loads(text)
        fields = [field.name for field in dataclasses.fields(Measurement)]
        return cls(
            current_span=body["current_span"],
            previous_span=body["previous_span"],
            serving_records=body["serving_records"],
            measurements=tuple(
                Measurement(**{k: m[k] for k in fields}) for m in body["measurements"]
            ),
            trigger_reason=body.get("trigger_reason", ""),
            population=tuple(body.get("population", ())),
        )

    def to_text(self) -> str:
        shifts = set(self.shifts)
        lines = [
            f"Drift check: {'PASSED' if self.passed else 'FAILED'}",
            f"newest span {self.current_span} vs previous span {self.previous_span or '-'}; "
            f"serving records: {self.serving_records}; run reason: {self.trigger_reason or '-'}",
            f"{'kind':<6} {'feature':<32} {'measure':<26} {'value':>8} {'limit':>8}",
        ]
        for m in sorted(self.measurements, key=lambda m: (m.kind, m.feature)):
            flag = "  SHIFT (retrain)" if m in shifts else "  VIOLATION" if m.violated else ""
            lines.append(
                f"{m.kind:<6} {m.feature:<32} {m.measure:<26} {m.value:>8.4f} "
                f"{m.threshold:>8.4f}{flag}"
            )
        if not self.passed:
            lines.append(f"reason: {self.reason}")
        if shifts:
            lines.append(
                "population shifts (recorded; this run retrains on them): "
                + ", ".join(sorted(f"{m.kind} on {m.feature}" for m in shifts))
            )
        return "\n".join(lines) + "\n"


def split_newest_spans(
    frame: pd.DataFrame,
) -> tuple[dt.date, dt.date | None, pd.DataFrame, pd.DataFrame]:
    """Rows of the newest UTC day and of the day before the newest (by event time)."""
    days = pd.to_datetime(frame[f.EVENT_TIMESTAMP], unit="s").dt.date
    present = sorted(days.unique())
    if not present:
        raise ValueError("no examples to check for drift")
    newest = present[-1]
    previous = present[-2] if len(present) > 1 else None
    return newest, previous, frame[days == newest], frame[days == previous]


def regional_levels(frame: pd.DataFrame) -> pd.DataFrame:
    """Per region (index), the median market median price and inventory of a span's rows
    with a positive price and inventory (columns ``market_median_price`` and
    ``market_inventory``). A span's examples carry its market row per region."""
    cols = [f.REGION, f.MARKET_MEDIAN_PRICE, f.MARKET_INVENTORY]
    if any(name not in frame.columns for name in cols):
        return pd.DataFrame(columns=cols[1:])
    rows = frame[cols].dropna()
    rows = rows[(rows[f.MARKET_MEDIAN_PRICE] > 0) & (rows[f.MARKET_INVENTORY] > 0)]
    region = rows[f.REGION].map(lambda r: r.decode() if isinstance(r, bytes) else str(r))
    return rows[cols[1:]].astype(float).groupby(region.to_numpy()).median()


def median_shift(now: pd.DataFrame, then: pd.DataFrame) -> tuple[str, float] | None:
    """(region, score) of the region whose market median price moved most between two
    spans' `regional_levels`: |d log median| x sqrt(min inventory). None when no region is
    in both."""
    both = now.join(then, how="inner", lsuffix="_now", rsuffix="_then")
    if both.empty:
        return None
    price, inventory = f.MARKET_MEDIAN_PRICE, f.MARKET_INVENTORY
    move = np.abs(np.log(both[f"{price}_now"]) - np.log(both[f"{price}_then"]))
    scores = move * np.sqrt(np.minimum(both[f"{inventory}_now"], both[f"{inventory}_then"]))
    region = str(scores.idxmax())
    return region, float(scores[region])


def regional_median_shift(
    current: pd.DataFrame, previous: pd.DataFrame
) -> tuple[str, float] | None:
    """(region, score) of the region whose market median price moved most between the two
    spans' rows (`median_shift` of their `regional_levels`)."""
    return median_shift(regional_levels(current), regional_levels(previous))


def _list_array(values: pd.Series) -> pa.Array:
    items = []
    for v in values.to_numpy(dtype=object):
        if v is None or (isinstance(v, float) and not np.isfinite(v)):
            items.append(None)
        elif isinstance(v, bytes | str):
            items.append([v.encode() if isinstance(v, str) else v])
        else:
            items.append([v])
    return pa.array(items)


def statistics(
    frame: pd.DataFrame, features: tuple[str, ...], schema: schema_pb2.Schema
) -> statistics_pb2.DatasetFeatureStatisticsList:
    """TFDV statistics of ``features`` of ``frame``; NaN/None are missing values."""
    present = [name for name in features if name in frame.columns]
    arrays = [_list_array(frame[name]) for name in present]
    batch = pa.RecordBatch.from_arrays(arrays, present)
    options = tfdv.StatsOptions(schema=schema, num_histogram_buckets=20)
    return stats_impl.generate_statistics_in_memory(batch, options)


def drift_schema(schema: schema_pb2.Schema, thresholds: Thresholds) -> schema_pb2.Schema:
    """A copy of ``schema`` with drift and skew comparators on the configured features."""
    out = schema_pb2.Schema()
    out.CopyFrom(schema)
    by_name = {feature.name: feature for feature in out.feature}
    for name in thresholds.features:
        if name not in by_name:
            raise ValueError(f"drift feature {name!r} is not in the schema")
    for name, limit in thresholds.numeric.items():
        for comparator in (by_name[name].drift_comparator, by_name[name].skew_comparator):
            comparator.jensen_shannon_divergence.threshold = limit
    for name, limit in thresholds.categorical.items():
        for comparator in (by_name[name].drift_comparator, by_name[name].skew_comparator):
            comparator.infinity_norm.threshold = limit
    return out


def _measurements(anomalies: anomalies_pb2.Anomalies, kind: str) -> list[Measurement]:
    out = []
    for info in anomalies.drift_skew_info:
        name = ".".join(info.path.step)
        measures = info.drift_measurements if kind == DRIFT else info.skew_measurements
        for m in measures:
            measure = _MEASURE_NAMES.get(m.type)
            if measure is None:
                continue
            out.append(Measurement(kind, name, measure, float(m.value), float(m.threshold)))
    return out


Stats = statistics_pb2.DatasetFeatureStatisticsList


def select_features(stats: Stats, names: tuple[str, ...]) -> Stats:
    """A copy of ``stats`` with only the features ``names`` (each feature's statistics do
    not depend on the others, so this equals statistics computed on those alone)."""
    out = statistics_pb2.DatasetFeatureStatisticsList()
    out.CopyFrom(stats)
    wanted = set(names)
    for dataset in out.datasets:
        kept = [x for x in dataset.features if ".".join(x.path.step) in wanted]
        del dataset.features[:]
        dataset.features.extend(kept)
    return out


@dataclasses.dataclass(frozen=True)
class SpanStatistics:
    """What the comparison reads of a window's positives: the statistics (of every compared
    feature) of the newest span, of the span before it and of the training split, and the
    two spans' `regional_levels`; None or empty where there are no rows."""

    current: Stats | None
    previous: Stats | None
    training: Stats | None
    levels_now: pd.DataFrame
    levels_then: pd.DataFrame


def compare(
    current: pd.DataFrame,
    previous: pd.DataFrame | None,
    serving: pd.DataFrame | None,
    training: pd.DataFrame | None,
    schema: schema_pb2.Schema,
    thresholds: Thresholds,
    current_span: str,
    previous_span: str | None,
    trigger_reason: str = "",
) -> DriftReport:
    """Measure drift (``current`` vs ``previous``) and skew (``training`` vs ``serving``);
    ``trigger_reason`` decides which violations block (`DriftReport.violations`). The
    statistics are computed here, in memory (`compare_statistics` takes them computed
    elsewhere, e.g. on Beam)."""
    compared = drift_schema(schema, thresholds)
    names = thresholds.features
    has = previous is not None and len(previous) > 0 and len(current) > 0
    spans = SpanStatistics(
        current=statistics(current, names, compared) if has else None,
        previous=statistics(previous, names, compared) if has and previous is not None else None,
        training=statistics(training, names, compared)
        if training is not None and len(training)
        else None,
        levels_now=regional_levels(current),
        levels_then=regional_levels(previous)
        if previous is not None
        else regional_levels(pd.DataFrame()),
    )
    return compare_statistics(
        spans, serving, schema, thresholds, current_span, previous_span, trigger_reason
    )


def compare_statistics(
    spans: SpanStatistics,
    serving: pd.DataFrame | None,
    schema: schema_pb2.Schema,
    thresholds: Thresholds,
    current_span: str,
    previous_span: str | None,
    trigger_reason: str = "",
) -> DriftReport:
    """`compare` on statistics computed beforehand (``spans``); the serving logs, bounded
    in size, are measured here."""
    compared = drift_schema(schema, thresholds)
    names = thresholds.features
    measurements: list[Measurement] = []
    if spans.current is not None and spans.previous is not None:
        anomalies = tfdv.validate_statistics(
            select_features(spans.current, names),
            compared,
            previous_statistics=select_features(spans.previous, names),
        )
        measurements += _measurements(anomalies, DRIFT)
        shift = median_shift(spans.levels_now, spans.levels_then)
        if thresholds.regional_median_shift is not None and shift is not None:
            region, score = shift
            feature = f"{f.MARKET_MEDIAN_PRICE}[{region}]"
            limit = thresholds.regional_median_shift
            measurements.append(Measurement(DRIFT, feature, MEDIAN_SHIFT, score, limit))
    serving_records = 0 if serving is None else len(serving)
    if serving is not None and serving_records and spans.training is not None:
        logged = tuple(name for name in names if name in serving.columns)
        if logged:
            anomalies = tfdv.validate_statistics(
                select_features(spans.training, logged),
                compared,
                serving_statistics=statistics(serving, logged, compared),
            )
            measurements += _measurements(anomalies, SKEW)
    return DriftReport(
        current_span=current_span,
        previous_span=previous_span,
        serving_records=serving_records,
        measurements=tuple(measurements),
        trigger_reason=trigger_reason,
        population=tuple(thresholds.population),
    )


# What the online-quality monitor compares served traffic with: the features an impression
# carries (aiqleads.events.records), as the training positives had them.
REFERENCE_FEATURES = REQUEST_FEATURES + LEAD_FEATURES


def reference(
    training: pd.DataFrame, schema: schema_pb2.Schema, thresholds: Thresholds
) -> tuple[statistics_pb2.DatasetFeatureStatisticsList, schema_pb2.Schema]:
    """TFDV statistics of the training positives' served features, and a schema whose skew
    comparators carry the run's thresholds: what serving traffic is measured against."""
    features = tuple(name for name in REFERENCE_FEATURES if name in thresholds.features)
    compared = drift_schema(schema, thresholds)
    return statistics(training, features, compared), compared


def reference_from(
    training: Stats, schema: schema_pb2.Schema, thresholds: Thresholds
) -> tuple[Stats, schema_pb2.Schema]:
    """`reference` from the training positives' statistics computed beforehand."""
    features = tuple(name for name in REFERENCE_FEATURES if name in thresholds.features)
    return select_features(training, features), drift_schema(schema, thresholds)
