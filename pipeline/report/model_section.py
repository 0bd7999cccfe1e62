"""The report's model section: TFMA's metrics overall and per slice, candidate against the
blessed baseline, and the gate's thresholds with whether each passed.

All of it is read from the Evaluator's output: the metrics (`tfma.load_metrics`), the
validation result (`tfma.load_validation_result`) and the evaluation config TFMA wrote
next to them (`eval_config.json`, with the thresholds as the Evaluator applied them: no
change thresholds on a first run, when there is no baseline).
"""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import pandas as pd
import tensorflow_model_analysis as tfma
from google.protobuf import json_format
from tensorflow_model_analysis.metrics import metric_specs

from pipeline.report import figures
from pipeline.report import html as h

EVAL_CONFIG_FILE = "eval_config.json"  # written by TFMA next to the metrics
EVAL_CONFIG_KEY = "evalConfig"
CANDIDATE = "candidate"
BASELINE = "baseline"
CHANGE = "change"
OVERALL = "overall"
COUNT_METRIC = "example_count"


@dataclasses.dataclass(frozen=True)
class MetricId:
    """A metric as the report names it: name, cut-off, and whether it is the change."""

    name: str
    top_k: int | None
    is_diff: bool

    @property
    def label(self) -> str:
        return self.name if self.top_k is None else f"{self.name}@{self.top_k}"


def _metric_id(key: object) -> MetricId:
    """From a ``MetricKey`` proto or a ``tfma.metrics.MetricKey``."""
    sub_key = getattr(key, "sub_key", None)
    top_k = None
    if sub_key is not None:
        value = sub_key.top_k
        top_k = getattr(value, "value", value) if value else None
    name = str(key.name)  # type: ignore[attr-defined]
    return MetricId(name, int(top_k) if top_k else None, bool(getattr(key, "is_diff", False)))


def _slice_name(single_slice_keys: object) -> tuple[str, str]:
    """(feature, value) of a single-feature slice; (overall, overall) for the whole set."""
    for key in single_slice_keys:  # type: ignore[attr-defined]
        kind = key.WhichOneof("kind")
        value = getattr(key, kind)
        return key.column, value.decode() if isinstance(value, bytes) else str(value)
    return OVERALL, OVERALL


def _model(model_name: str) -> str:
    return BASELINE if model_name == BASELINE else CANDIDATE


def load_metrics(evaluation_uri: str) -> pd.DataFrame:
    """Long frame: slice feature, slice value, metric, model (candidate, baseline, change)."""
    rows = []
    for metrics_for_slice in tfma.load_metrics(evaluation_uri):
        feature, value = _slice_name(metrics_for_slice.slice_key.single_slice_keys)
        for kv in metrics_for_slice.metric_keys_and_values:
            if not kv.value.HasField("double_value"):
                continue
            metric = _metric_id(kv.key)
            model = CHANGE if metric.is_diff else _model(kv.key.model_name)
            rows.append(
                {
                    "slice": feature,
                    "value": value,
                    "metric": metric.label,
                    "model": model,
                    "number": kv.value.double_value.value,
                }
            )
    return pd.DataFrame(rows, columns=["slice", "value", "metric", "model", "number"])


def load_eval_config(evaluation_uri: str) -> tfma.EvalConfig:
    with open(os.path.join(evaluation_uri, EVAL_CONFIG_FILE), encoding="utf-8") as fh:
        raw = json.load(fh)
    return json_format.Parse(json.dumps(raw[EVAL_CONFIG_KEY]), tfma.EvalConfig())


def _bounds(threshold: object) -> str:
    if isinstance(threshold, tfma.GenericValueThreshold):
        parts = []
        if threshold.HasField("lower_bound"):
            parts.append(f">= {threshold.lower_bound.value:g}")
        if threshold.HasField("upper_bound"):
            parts.append(f"<= {threshold.upper_bound.value:g}")
        return "value " + " and ".join(parts)
    assert isinstance(threshold, tfma.GenericChangeThreshold)
    direction = tfma.MetricDirection.Name(threshold.direction).lower().replace("_", " ")
    parts = []
    if threshold.HasField("absolute"):
        parts.append(f"absolute change >= {threshold.absolute.value:g}")
    if threshold.HasField("relative"):
        parts.append(f"relative change >= {threshold.relative.value:g}")
    return f"{' and '.join(parts)} ({direction})"


def gate_table(evaluation_uri: str, metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per threshold of the gate: the bound, the value it was held to, passed."""
    config = load_eval_config(evaluation_uri)
    validation = tfma.load_validation_result(evaluation_uri)
    failed = {
        (_slice_name(v.slice_key.single_slice_keys), _metric_id(failure.metric_key))
        for v in validation.metric_validations_per_slice
        for failure in v.failures
    }
    rows = []
    thresholds = metric_specs.metric_thresholds_from_metrics_specs(config.metrics_specs, config)
    for key, per_slice in thresholds.items():
        metric = _metric_id(key)
        if _model(key.model_name) == BASELINE:
            continue
        for spec, threshold in per_slice:
            slice_name = (OVERALL, OVERALL)
            if spec is not None and spec.feature_values:
                slice_name = next(iter(spec.feature_values.items()))
            model = CHANGE if metric.is_diff else CANDIDATE
            held = metrics[
                (metrics["slice"] == slice_name[0])
                & (metrics["value"] == slice_name[1])
                & (metrics["metric"] == metric.label)
                & (metrics["model"] == model)
            ]["number"]
            rows.append(
                {
                    "metric": metric.label,
                    "slice": slice_name[1] if slice_name[0] == OVERALL else "=".join(slice_name),
                    "threshold": _bounds(threshold),
                    "value held to it": float(held.iloc[0]) if len(held) else float("nan"),
                    "status": h.passed_badge((slice_name, metric) not in failed),
                }
            )
    return pd.DataFrame(rows)


def overall_table(metrics: pd.DataFrame) -> pd.DataFrame:
    overall = metrics[metrics["slice"] == OVERALL]
    table = overall.pivot_table(index="metric", columns="model", values="number", aggfunc="first")
    return table.reindex(columns=[c for c in (CANDIDATE, BASELINE, CHANGE) if c in table.columns])


def slice_table(metrics: pd.DataFrame, feature: str) -> pd.DataFrame:
    """One row per value of ``feature``: the candidate's metrics, and each change against the
    baseline when there is one."""
    part = metrics[metrics["slice"] == feature]
    wide = part.pivot_table(
        index="value", columns=["metric", "model"], values="number", aggfunc="first"
    )
    out = pd.DataFrame(index=wide.index)
    for metric in sorted({m for m, _ in wide.columns}, key=lambda m: (m != COUNT_METRIC, m)):
        if (metric, CANDIDATE) in wide.columns:
            out[metric] = wide[(metric, CANDIDATE)]
        if metric != COUNT_METRIC and (metric, CHANGE) in wide.columns:
            out[f"{metric} change"] = wide[(metric, CHANGE)]
    return out.reset_index().rename(columns={"value": feature})


def slice_figure(metrics: pd.DataFrame, feature: str, metric: str) -> str | None:
    """``metric`` per value of ``feature``, candidate and baseline side by side."""
    part = metrics[(metrics["slice"] == feature) & (metrics["metric"] == metric)]
    if part.empty:
        return None
    wide = part.pivot_table(index="value", columns="model", values="number", aggfunc="first")
    fig, (ax,) = figures.new_figure(max(4.0, 0.28 * len(wide) + 2.0), 3.2)
    x = np.arange(len(wide))
    for model, marker in ((CANDIDATE, "o"), (BASELINE, "s")):
        if model in wide.columns:
            ax.plot(x, wide[model], marker=marker, linestyle="none", label=model)
    ax.set_xticks(x, list(wide.index), rotation=70, fontsize=7)
    ax.set_ylabel(metric)
    ax.grid(axis="y", linewidth=0.5, alpha=0.5)
    ax.set_title(f"{metric} per {feature}", fontsize=10)
    ax.legend(fontsize=7)
    return figures.to_svg(fig)


def slice_features(metrics: pd.DataFrame) -> list[str]:
    return sorted(s for s in metrics["slice"].unique() if s != OVERALL)
