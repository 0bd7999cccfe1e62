"""The candidate's and the blessed baseline's scores on the run's eval split, and what the
report draws from them: calibration, precision and recall at k, score distributions per
label, and metrics per user segment (new vs known users).

TFMA's evaluation holds metrics, not the per-example predictions these need, so the report
scores the eval split itself, with each model's ``serving_default`` signature (the one the
Evaluator scores) on the very records ExampleGen wrote. The ranking metrics use the
project's formulas (`components.baselines.metrics`, `pipeline.ranking_metrics.auc`), the ones
the Evaluator's metrics use.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import tensorflow as tf
from numpy.typing import NDArray

from components.baselines import metrics as ranking
from components.trainer import signatures
from pipeline import ranking_metrics
from transforms import features as f

CANDIDATE = "candidate"
BASELINE = "baseline"
SEGMENT = "user segment"
NEW_USERS = "new users"  # no event before the example's time (no recency)
KNOWN_USERS = "known users"
BATCH = 2048
CALIBRATION_BINS = 10


def score(saved_model_dir: str, records: list[bytes]) -> NDArray[np.float64]:
    """``serving_default``'s probability of engagement for each serialized example."""
    model = tf.saved_model.load(saved_model_dir)
    serve = model.signatures[signatures.SERVING_DEFAULT]
    out: list[NDArray[np.float64]] = []
    for start in range(0, len(records), BATCH):
        batch = tf.constant(records[start : start + BATCH])
        result = serve(**{signatures.EXAMPLES_INPUT: batch})
        out.append(np.asarray(result[signatures.SCORE_OUTPUT].numpy(), float).reshape(-1))
    return np.concatenate(out) if out else np.zeros(0)


def user_segment(frame: pd.DataFrame) -> pd.Series:
    """New users have no event before the example (ExampleGen leaves their recency missing)."""
    new = frame[f.USER_DAYS_SINCE_LAST].isna()
    return pd.Series(np.where(new, NEW_USERS, KNOWN_USERS), index=frame.index, name=SEGMENT)


def engaged(frame: pd.DataFrame) -> NDArray[np.bool_]:
    return np.asarray(frame[f.ENGAGEMENT].to_numpy(dtype=float) > 0)


def _ranked_users(frame: pd.DataFrame, column: str) -> list[NDArray[np.float64]]:
    """Per user with an engagement: the engagement of their examples, best score first."""
    out = []
    for _, rows in frame.groupby(f.USER_ID, sort=False):
        gains = rows[f.ENGAGEMENT].to_numpy(dtype=float)
        if (gains > 0).any():
            out.append(gains[np.argsort(-rows[column].to_numpy(), kind="mergesort")])
    return out


def _per_user(frame: pd.DataFrame, column: str, k: int) -> dict[str, float]:
    """Means over users with an engagement of HR@k, NDCG@k, precision@k and recall@k, each
    user's examples ranked by ``column`` (the Evaluator's per-user protocol)."""
    totals = {"hit_rate": 0.0, "ndcg": 0.0, "precision": 0.0, "recall": 0.0}
    users = _ranked_users(frame, column)
    for gains in users:
        relevant = {rank: g for rank, g in enumerate(gains) if g > 0}
        result = ranking.ranking_metrics(list(range(len(gains))), relevant, k)
        totals["hit_rate"] += result[ranking.HIT_RATE]
        totals["ndcg"] += result[ranking.NDCG]
        totals["recall"] += result[ranking.RECALL]
        totals["precision"] += ranking.precision(ranking.relevant_in_top_k(gains > 0, k), k)
    return {name: v / len(users) if users else float("nan") for name, v in totals.items()}


def segment_metrics(frame: pd.DataFrame, models: list[str], k: int) -> pd.DataFrame:
    """Per user segment and model: examples, positives, AUC and the per-user metrics at k."""
    segments = user_segment(frame)
    rows = []
    for segment in (KNOWN_USERS, NEW_USERS):
        part = frame[segments == segment]
        for model in models:
            row: dict[str, object] = {
                SEGMENT: segment,
                "model": model,
                "examples": len(part),
                "engaged": int(engaged(part).sum()),
                "users": int(part[f.USER_ID].nunique()),
                "engagement_auc": ranking_metrics.auc(part[model].to_numpy(), engaged(part))
                if len(part)
                else float("nan"),
            }
            row.update({f"{name}@{k}": v for name, v in _per_user(part, model, k).items()})
            rows.append(row)
    return pd.DataFrame(rows)


def at_k_curve(frame: pd.DataFrame, column: str, ks: range) -> pd.DataFrame:
    """precision@k and recall@k (means over users with an engagement) for each k."""
    relevant = [gains > 0 for gains in _ranked_users(frame, column)]
    rows = []
    for k in ks:
        found = [ranking.relevant_in_top_k(r, k) for r in relevant]
        precision = [ranking.precision(n, k) for n in found]
        recall = [ranking.recall(n, int(r.sum())) for n, r in zip(found, relevant, strict=True)]
        rows.append(
            {
                "k": k,
                "precision": float(np.mean(precision)) if relevant else float("nan"),
                "recall": float(np.mean(recall)) if relevant else float("nan"),
            }
        )
    return pd.DataFrame(rows)


def calibration(frame: pd.DataFrame, column: str, bins: int = CALIBRATION_BINS) -> pd.DataFrame:
    """Equal-width score bins: mean score, observed engagement rate and count per bin."""
    scores = frame[column].to_numpy(dtype=float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(scores, edges[1:-1]), 0, bins - 1)
    positive = engaged(frame)
    rows = []
    for b in range(bins):
        mask = which == b
        if mask.any():
            rows.append(
                {
                    "bin": f"{edges[b]:.1f}-{edges[b + 1]:.1f}",
                    "mean score": float(scores[mask].mean()),
                    "engaged rate": float(positive[mask].mean()),
                    "examples": int(mask.sum()),
                }
            )
    return pd.DataFrame(rows)
