"""The evaluation table: candidate vs baseline metrics on the overall slice (TFMA output)."""

from __future__ import annotations

import dataclasses
import math

import tensorflow_model_analysis as tfma


@dataclasses.dataclass(frozen=True)
class MetricRow:
    name: str
    candidate: float
    baseline: float | None


def _metric_name(key) -> str:
    name = key.name
    if key.HasField("sub_key") and key.sub_key.HasField("top_k"):
        name = f"{name}@{key.sub_key.top_k.value}"
    return name


def overall_metrics(evaluation_uri: str) -> list[MetricRow]:
    """Overall-slice metrics per model (candidate, and baseline when there was one)."""
    values: dict[str, dict[str, float]] = {}
    for metrics_for_slice in tfma.load_metrics(evaluation_uri):
        if metrics_for_slice.slice_key.single_slice_keys:
            continue
        for kv in metrics_for_slice.metric_keys_and_values:
            if kv.key.is_diff or not kv.value.HasField("double_value"):
                continue
            model = kv.key.model_name or "candidate"
            values.setdefault(_metric_name(kv.key), {})[model] = kv.value.double_value.value
    rows = []
    for name in sorted(values):
        per_model = values[name]
        candidate = per_model.get("candidate", per_model.get("", math.nan))
        rows.append(MetricRow(name, candidate, per_model.get("baseline")))
    return rows


def format_table(rows: list[MetricRow]) -> str:
    width = max([24, *(len(row.name) for row in rows)])
    lines = [f"{'metric':<{width}} {'candidate':>10} {'baseline':>10} {'change':>9}"]
    for row in rows:
        base = "-" if row.baseline is None else f"{row.baseline:.4f}"
        change = "-" if row.baseline is None else f"{row.candidate - row.baseline:+.4f}"
        lines.append(f"{row.name:<{width}} {row.candidate:>10.4f} {base:>10} {change:>9}")
    return "\n".join(lines)
