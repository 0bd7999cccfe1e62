"""The report's plots of the models' scores on the eval split: calibration, precision and
recall at k, score distributions per label, and metrics per user segment (`scoring`)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.report import figures, scoring
from pipeline.report import html as h
from transforms import features as f

MAX_K = 20
HIST_BINS = 40
COLORS = {scoring.CANDIDATE: "#d1495b", scoring.BASELINE: "#2e86ab"}
LEVEL_COLORS = ("#8d99ae", "#2e86ab", "#66a182", "#edae49", "#d1495b")


def calibration_figure(frame: pd.DataFrame, models: list[str]) -> str:
    fig, (ax,) = figures.new_figure(4.8, 4.0)
    ax.plot([0, 1], [0, 1], color="#8d99ae", linestyle="--", linewidth=1, label="calibrated")
    for model in models:
        table = scoring.calibration(frame, model)
        ax.plot(
            table["mean score"],
            table["engaged rate"],
            marker="o",
            color=COLORS[model],
            label=model,
        )
    ax.set_xlabel("mean predicted score in the bin")
    ax.set_ylabel("share engaged in the bin")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    return figures.to_svg(fig)


def at_k_figure(frame: pd.DataFrame, models: list[str]) -> str:
    fig, axes = figures.new_figure(9.0, 3.4, ncols=2)
    for model in models:
        curve = scoring.at_k_curve(frame, model, range(1, MAX_K + 1))
        for ax, column in zip(axes, ("precision", "recall"), strict=True):
            ax.plot(curve["k"], curve[column], marker=".", color=COLORS[model], label=model)
    for ax, column in zip(axes, ("precision", "recall"), strict=True):
        ax.set_xlabel("k")
        ax.set_ylabel(f"{column}@k (mean over users)")
        ax.set_ylim(0, 1.02)
        ax.legend(fontsize=8)
    return figures.to_svg(fig)


def score_distribution_figure(frame: pd.DataFrame, models: list[str]) -> str:
    fig, axes = figures.new_figure(5.6 * len(models), 3.8, ncols=len(models))
    levels = sorted(f.ENGAGEMENT_LEVELS.items(), key=lambda kv: kv[1])
    bins = np.linspace(0.0, 1.0, HIST_BINS + 1).tolist()
    label = frame[f.ENGAGEMENT].to_numpy()
    for ax, model in zip(axes, models, strict=True):
        scores = frame[model].to_numpy()
        for (name, level), color in zip(levels, LEVEL_COLORS, strict=True):
            chosen = scores[label == level]
            if len(chosen):
                ax.hist(
                    chosen,
                    bins=bins,
                    density=True,
                    histtype="step",
                    linewidth=1.5,
                    color=color,
                    label=f"{name} ({len(chosen):,})",
                )
        ax.set_title(model, fontsize=10)
        ax.set_xlabel("score")
        ax.set_ylabel("density (each label on its own)")
        ax.legend(fontsize=7, loc="upper center")
    return figures.to_svg(fig)


def render(frame: pd.DataFrame | None, models: list[str], top_k: int) -> str:
    if frame is None or not models:
        return h.note("No trained model in this run: nothing to score.")
    which = " and ".join(models)
    parts = [
        h.note(
            f"The {which} model{'s' if len(models) > 1 else ''} scored on the run's eval split "
            f"({len(frame):,} examples) with serving_default, the signature the Evaluator "
            "scores."
        ),
        h.figure(
            calibration_figure(frame, models),
            "Calibration: equal-width score bins, the share engaged against the mean score. "
            "The eval split holds sampled negatives, so rates are per example of that split.",
            "calibration",
        ),
        h.figure(
            at_k_figure(frame, models),
            "Precision and recall at k: each user's eval examples ranked by score, means over "
            "users with at least one engagement.",
            "precision-recall-at-k",
        ),
        h.figure(
            score_distribution_figure(frame, models),
            "Score distributions per label (engagement level; negative: sampled).",
            "score-distributions",
        ),
        h.heading("Calibration bins"),
    ]
    for model in models:
        parts.append(h.table(scoring.calibration(frame, model), caption=model))
    return "".join(parts)


def segment_render(frame: pd.DataFrame | None, models: list[str], top_k: int) -> str:
    if frame is None or not models:
        return ""
    table = scoring.segment_metrics(frame, models, top_k)
    return (
        h.heading("New vs known users (from the models' scores on the eval split)")
        + h.note(
            "A new user has no event before the example. TFMA's slices do not include this "
            "one, so the report computes it from the models' scores: AUC and the per-user "
            "metrics as the Evaluator's (components.baselines.metrics); NDCG here takes the "
            "gain 2^engagement - 1 (the quality benchmark's), so it reads lower than TFMA's."
        )
        + h.table(table)
    )
