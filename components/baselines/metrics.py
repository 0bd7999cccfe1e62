"""Top-k ranking metrics for one user (binary relevance for HR/precision/recall, graded for
NDCG).

The formulas live here once: the quality benchmark calls `ranking_metrics` on ranked ids,
and the TFMA metrics of the pipeline (`pipeline.ranking_metrics`) call `relevant_in_top_k`,
`hit_rate`, `precision` and `recall` on each user's scored examples.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

HIT_RATE = "hr"
RECALL = "recall"
NDCG = "ndcg"
"""The keys of `ranking_metrics`' result."""


def relevant_in_top_k(relevant_by_rank: Sequence[bool] | np.ndarray, k: int) -> int:
    """How many of the first ``k`` items are relevant; ``relevant_by_rank`` is in rank order."""
    return int(np.count_nonzero(np.asarray(relevant_by_rank[:k], dtype=bool)))


def hit_rate(found: int) -> float:
    """HR@k of one user: 1 when at least one relevant item is in the top k."""
    return 1.0 if found > 0 else 0.0


def precision(found: int, k: int) -> float:
    """precision@k of one user: the share of the k slots that hold a relevant item."""
    return found / k


def recall(found: int, n_relevant: int) -> float:
    """recall@k of one user: the share of the user's relevant items found in the top k."""
    return found / n_relevant


def ranking_metrics(ranked: list, gains: dict, k: int) -> dict[str, float]:
    """HR@k, recall@k and NDCG@k of ``ranked`` ids against ``gains`` (id -> gain > 0)."""
    if not gains:
        raise ValueError("a user without relevant items cannot be evaluated")
    hits = [gains.get(x, 0.0) for x in ranked[:k]]
    dcg = sum((2.0**g - 1.0) / np.log2(i + 2.0) for i, g in enumerate(hits) if g > 0)
    ideal = sorted(gains.values(), reverse=True)[:k]
    idcg = sum((2.0**g - 1.0) / np.log2(i + 2.0) for i, g in enumerate(ideal))
    found = relevant_in_top_k([g > 0 for g in hits], k)
    return {
        HIT_RATE: hit_rate(found),
        RECALL: recall(found, len(gains)),
        NDCG: dcg / idcg,
    }
