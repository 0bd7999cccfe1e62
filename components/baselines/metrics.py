"""Top-k ranking metrics for one user (binary relevance for HR/recall, graded for NDCG)."""

from __future__ import annotations

import numpy as np


def ranking_metrics(ranked: list, gains: dict, k: int) -> dict[str, float]:
    """HR@k, recall@k and NDCG@k of ``ranked`` ids against ``gains`` (id -> gain > 0)."""
    if not gains:
        raise ValueError("a user without relevant items cannot be evaluated")
    top = ranked[:k]
    hits = [g for g in (gains.get(x, 0.0) for x in top)]
    dcg = sum((2.0**g - 1.0) / np.log2(i + 2.0) for i, g in enumerate(hits) if g > 0)
    ideal = sorted(gains.values(), reverse=True)[:k]
    idcg = sum((2.0**g - 1.0) / np.log2(i + 2.0) for i, g in enumerate(ideal))
    n_hits = sum(1 for g in hits if g > 0)
    return {
        "hr": 1.0 if n_hits else 0.0,
        "recall": n_hits / len(gains),
        "ndcg": dcg / idcg,
    }
