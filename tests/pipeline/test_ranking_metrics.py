"""The custom TFMA ranking metrics, on per-user inputs whose values are derived by hand."""

from __future__ import annotations

import numpy as np
import pytest
from tensorflow_model_analysis.metrics import metric_types

from pipeline import ranking_metrics


def _user(scores, gains, user="u"):
    n = len(scores)
    return metric_types.StandardMetricInputs(
        label=np.array(gains, dtype=float),
        prediction=np.array(scores, dtype=float),
        example_weight=np.array([1.0]),
        features={"engagement": np.array(gains), "user_id": np.array([user] * n)},
    )


def _combine(top_k, users):
    [computation] = ranking_metrics.TopKRanking(top_k=top_k).computations(query_key="user_id")
    combiner = computation.combiner
    acc = combiner.create_accumulator()
    for element in users:
        acc = combiner.add_input(acc, element)
    acc = combiner.merge_accumulators([acc, combiner.create_accumulator()])
    return {k.name: v for k, v in combiner.extract_output(acc).items()}


def test_hit_precision_recall_at_k_by_hand():
    # User a: top-2 by score are items 0 (gain 1) and 2 (gain 0); relevant: items 0 and 3.
    #   hit 1, precision 1/2, recall 1/2.
    # User b: top-2 are items 1, 0 (gains 0, 0); relevant item 2 -> hit 0, p 0, r 0.
    # User c: no relevant item -> not counted.
    out = _combine(
        2,
        [
            _user([0.9, 0.1, 0.8, 0.3], [1, 0, 0, 4], "a"),
            _user([0.5, 0.7, 0.2], [0, 0, 2], "b"),
            _user([0.5, 0.4], [0, 0], "c"),
        ],
    )
    assert out["hit_rate@2"] == pytest.approx(0.5)
    assert out["precision@2"] == pytest.approx(0.25)
    assert out["recall@2"] == pytest.approx(0.25)


def test_auc_counts_ties_half():
    # Positives 0.8, 0.5; negatives 0.5, 0.1: pairs (0.8>0.5, 0.8>0.1, 0.5=0.5, 0.5>0.1) -> 3.5/4.
    assert ranking_metrics.auc(
        np.array([0.8, 0.5, 0.5, 0.1]), np.array([True, True, False, False])
    ) == pytest.approx(0.875)
    assert np.isnan(ranking_metrics.auc(np.array([0.1]), np.array([True])))
