"""The report's data section: TFDV statistics, the newest span against the one before, the
anomalies and the drift report with its thresholds.

TFDV's own HTML rendering (Facets, `tfdv.visualize_statistics`) loads its web components
from the network (cdnjs.cloudflare.com, raw.githubusercontent.com) through HTML imports,
which current browsers no longer run either, so the statistics are rendered here as tables
and figures from the same statistics protos. The anomalies table is TFDV's own
(`display_util.get_anomalies_dataframe`).
"""

from __future__ import annotations

import dataclasses
import glob
import os

import numpy as np
import pandas as pd
import tensorflow_data_validation as tfdv
from numpy.typing import NDArray
from tensorflow_data_validation.utils import display_util
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2, statistics_pb2
from tfx.utils import io_utils

from components.drift_check import drift
from pipeline.report import figures
from pipeline.report import html as h

STATS_FILE = "FeatureStats.pb"  # StatisticsGen's file per split
ANOMALIES_FILE = "SchemaDiff.pb"  # ExampleValidator's file per split
SPLIT_GLOB = "Split-*"
TOP_VALUES = 3
GRID_COLUMNS = 3


@dataclasses.dataclass(frozen=True)
class SpanPair:
    """The positives of the window's newest span and of the span before it."""

    newest: str
    previous: str | None
    current: pd.DataFrame
    before: pd.DataFrame


def split_dirs(uri: str) -> dict[str, str]:
    """split name -> its ``Split-<name>`` folder under an artifact."""
    found = sorted(glob.glob(os.path.join(uri, SPLIT_GLOB)))
    return {os.path.basename(d).removeprefix("Split-"): d for d in found}


def load_statistics(uri: str) -> dict[str, statistics_pb2.DatasetFeatureStatisticsList]:
    out = {}
    for split, folder in split_dirs(uri).items():
        path = os.path.join(folder, STATS_FILE)
        if os.path.isfile(path):
            out[split] = tfdv.load_stats_binary(path)
    return out


def load_anomalies(uri: str) -> dict[str, anomalies_pb2.Anomalies]:
    out = {}
    for split, folder in split_dirs(uri).items():
        path = os.path.join(folder, ANOMALIES_FILE)
        if os.path.isfile(path):
            out[split] = anomalies_pb2.Anomalies.FromString(io_utils.read_bytes_file(path))
    return out


def _name(feature: statistics_pb2.FeatureNameStatistics) -> str:
    return ".".join(feature.path.step) or feature.name


def feature_table(stats: statistics_pb2.DatasetFeatureStatistics) -> pd.DataFrame:
    """One row per feature: presence, and the numeric or categorical summary TFDV computed."""
    rows = []
    total = stats.num_examples
    for feature in sorted(stats.features, key=_name):
        kind = feature.WhichOneof("stats")
        common = (
            feature.num_stats.common_stats
            if kind == "num_stats"
            else feature.string_stats.common_stats
        )
        row: dict[str, object] = {
            "feature": _name(feature),
            "type": statistics_pb2.FeatureNameStatistics.Type.Name(feature.type).lower(),
            "present": int(common.num_non_missing),
            "missing %": 100.0 * common.num_missing / total if total else float("nan"),
        }
        if kind == "num_stats":
            num = feature.num_stats
            row.update(mean=num.mean, std=num.std_dev, min=num.min, median=num.median, max=num.max)
            row["zeros %"] = 100.0 * num.num_zeros / total if total else float("nan")
        else:
            top = feature.string_stats.top_values[:TOP_VALUES]
            row["unique"] = int(feature.string_stats.unique)
            row["top values"] = ", ".join(f"{v.value} ({int(v.frequency):,})" for v in top)
        rows.append(row)
    columns = ["feature", "type", "present", "missing %", "mean", "std", "min", "median"]
    columns += ["max", "zeros %", "unique", "top values"]
    return pd.DataFrame(rows).reindex(columns=columns)


def span_pair(positives: pd.DataFrame) -> SpanPair:
    """The newest and previous spans' positives, by the drift check's own rule."""
    newest, previous, current, before = drift.split_newest_spans(positives)
    return SpanPair(str(newest), None if previous is None else str(previous), current, before)


def span_statistics(
    pair: SpanPair, features: tuple[str, ...], schema: schema_pb2.Schema
) -> tuple[statistics_pb2.DatasetFeatureStatistics, statistics_pb2.DatasetFeatureStatistics]:
    """TFDV statistics of ``features`` on the two spans (as the drift check computes them)."""
    compared = [name for name in features if name in pair.current.columns]
    now = drift.statistics(pair.current, tuple(compared), schema).datasets[0]
    then = drift.statistics(pair.before, tuple(compared), schema).datasets[0]
    return now, then


def span_comparison_table(
    now: statistics_pb2.DatasetFeatureStatistics,
    then: statistics_pb2.DatasetFeatureStatistics,
    pair: SpanPair,
) -> pd.DataFrame:
    """Per feature, the newest span's summary next to the previous span's."""
    a = feature_table(now).set_index("feature")
    b = feature_table(then).set_index("feature")
    rows = []
    for name in a.index:
        row: dict[str, object] = {"feature": name}
        for label, frame in ((pair.newest, a), (pair.previous or "previous", b)):
            if name not in frame.index:
                continue
            stats = frame.loc[name]
            summary = stats["top values"] if isinstance(stats["top values"], str) else None
            row[f"{label} present"] = stats["present"]
            row[f"{label} mean / top"] = summary if summary is not None else stats["mean"]
            row[f"{label} missing %"] = stats["missing %"]
        rows.append(row)
    return pd.DataFrame(rows)


def _histogram(
    feature: statistics_pb2.FeatureNameStatistics,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(bucket edges, share per bucket) of TFDV's standard histogram of a numeric feature."""
    standard = [
        hist
        for hist in feature.num_stats.histograms
        if hist.type == statistics_pb2.Histogram.STANDARD
    ]
    buckets = list(standard[0].buckets) if standard else []
    if not buckets:
        return np.zeros(0), np.zeros(0)
    edges = np.array([b.low_value for b in buckets] + [buckets[-1].high_value])
    counts = np.array([b.sample_count for b in buckets], dtype=float)
    return edges, counts / max(counts.sum(), 1.0)


def _frequencies(feature: statistics_pb2.FeatureNameStatistics) -> dict[str, float]:
    """value -> share of a categorical feature, from TFDV's rank histogram."""
    buckets = feature.string_stats.rank_histogram.buckets
    total = sum(b.sample_count for b in buckets) or 1.0
    return {b.label: b.sample_count / total for b in buckets}


def _categorical(feature: statistics_pb2.FeatureNameStatistics) -> bool:
    return bool(feature.WhichOneof("stats") != "num_stats")


def _top_keys(shares: list[dict[str, float]], most: int = 12) -> list[str]:
    """All values when there are few (in order), else the ``most`` with the largest share."""
    keys = sorted({k for share in shares for k in share})
    if len(keys) <= most:
        return keys
    return sorted(keys, key=lambda k: -max(share.get(k, 0.0) for share in shares))[:most]


def span_histograms_figure(
    now: statistics_pb2.DatasetFeatureStatistics,
    then: statistics_pb2.DatasetFeatureStatistics,
    pair: SpanPair,
) -> str:
    """Small multiples: each compared feature's distribution on the two spans."""
    by_name_then = {_name(x): x for x in then.features}
    names = sorted(_name(x) for x in now.features)
    rows = max(1, -(-len(names) // GRID_COLUMNS))
    fig, grid = figures.new_grid(rows, GRID_COLUMNS, 10.5, 2.6 * rows)
    axes = [ax for row in grid for ax in row]
    by_name_now = {_name(x): x for x in now.features}
    spans = (
        (by_name_now, pair.newest, "#d1495b", -0.2),
        (by_name_then, pair.previous, "#2e86ab", 0.2),
    )
    for ax, name in zip(axes, names, strict=False):
        shares = [_frequencies(d[name]) for d, *_ in spans if name in d and _categorical(d[name])]
        keys = _top_keys(shares)
        for by_name, label, color, offset in spans:
            feature = by_name.get(name)
            if feature is None:
                continue
            if not _categorical(feature):
                edges, share = _histogram(feature)
                if len(share):
                    ax.stairs(share, edges, label=label, color=color, linewidth=1.5)
            else:
                freq = _frequencies(feature)
                x = np.arange(len(keys)) + offset
                ax.bar(x, [freq.get(k, 0.0) for k in keys], width=0.4, color=color, label=label)
                ax.set_xticks(np.arange(len(keys)), keys, rotation=60, fontsize=6)
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in axes[len(names) :]:
        ax.axis("off")
    if names:
        axes[0].legend(fontsize=7)
    return figures.to_svg(fig)


def drift_table(report: drift.DriftReport) -> pd.DataFrame:
    rows = []
    for m in sorted(report.measurements, key=lambda m: m.value / m.threshold, reverse=True):
        shift = m in report.shifts
        status = h.badge("shift, recorded", h.INFO) if shift else h.passed_badge(not m.violated)
        rows.append(
            {
                "kind": m.kind,
                "feature": m.feature,
                "measure": m.measure,
                "value": m.value,
                "threshold": m.threshold,
                "value / threshold": m.value / m.threshold if m.threshold else float("nan"),
                "status": status,
            }
        )
    return pd.DataFrame(rows)


def drift_figure(report: drift.DriftReport) -> str:
    """Each measurement as a share of its threshold (1 is the limit)."""
    ms = sorted(report.measurements, key=lambda m: m.value / m.threshold)
    fig, (ax,) = figures.new_figure(7.0, 0.35 * len(ms) + 1.2)
    ratios = [m.value / m.threshold for m in ms]
    colors = ["#d1495b" if m.violated else "#2e86ab" for m in ms]
    ax.barh([f"{m.kind}: {m.feature}" for m in ms], ratios, color=colors)
    ax.axvline(1.0, color="#1d2430", linestyle="--", linewidth=1)
    ax.set_xlabel("value / threshold (the check fails above 1)")
    ax.tick_params(labelsize=8)
    return figures.to_svg(fig)


def render(
    statistics_uri: str | None,
    anomalies_uri: str | None,
    report: drift.DriftReport | None,
    pair: SpanPair | None,
    schema: schema_pb2.Schema | None,
    split_sizes: pd.DataFrame,
) -> str:
    parts = [h.heading("Examples of the run"), h.table(split_sizes)]
    if statistics_uri:
        for split, stats in load_statistics(statistics_uri).items():
            dataset = stats.datasets[0]
            parts.append(h.heading(f"TFDV statistics, split {split} ({dataset.num_examples:,})"))
            parts.append(h.table(feature_table(dataset)))
    else:
        parts.append(h.note("StatisticsGen did not run in this run."))
    if pair is not None and schema is not None and report is not None and pair.previous:
        drifted = {m.feature for m in report.measurements if m.kind == drift.DRIFT}
        names = tuple(sorted(drifted & set(pair.current.columns)))
        if names:
            now, then = span_statistics(pair, names, schema)
            parts.append(
                h.heading(f"Newest span {pair.newest} against {pair.previous} (positives)")
            )
            parts.append(
                h.note(
                    "TFDV statistics of the drift check's features on the engaged examples of "
                    "the window's last two days, the data the drift check compares."
                )
            )
            parts.append(h.table(span_comparison_table(now, then, pair)))
            parts.append(
                h.figure(
                    span_histograms_figure(now, then, pair),
                    f"Distributions on {pair.newest} and {pair.previous} (TFDV histograms; "
                    "share of each day's positives).",
                    "span-histograms",
                )
            )
    parts.append(h.heading("Anomalies (ExampleValidator against the curated schema)"))
    anomalies = load_anomalies(anomalies_uri) if anomalies_uri else {}
    for split, found in anomalies.items():
        frame = display_util.get_anomalies_dataframe(found).reset_index()
        if frame.empty:
            parts.append(h.note(f"split {split}: no anomalies."))
        else:
            parts.append(h.table(frame, caption=f"split {split}"))
    if not anomalies:
        parts.append(h.note("ExampleValidator did not run in this run."))
    parts.append(h.heading("Drift and skew check"))
    if report is None:
        parts.append(h.note("The drift check did not run in this run."))
    else:
        parts.append(
            f"<p>{h.passed_badge(report.passed)} {h.esc(report.current_span)} against "
            f"{h.esc(report.previous_span or '-')}; serving records compared: "
            f"{report.serving_records:,}; run reason: {h.esc(report.trigger_reason or '-')}"
            f"{'; ' + h.esc(report.reason) if not report.passed else ''}</p>"
        )
        parts.append(h.table(drift_table(report), raw_columns=("status",)))
        if report.measurements:
            parts.append(
                h.figure(
                    drift_figure(report),
                    "Each drift and skew measurement against its threshold.",
                    "drift-thresholds",
                )
            )
    return "".join(parts)
