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


def _histogram_auc(scores, engaged, bins=ranking_metrics.AUC_BINS):
    return ranking_metrics.HistogramAUC.empty(bins).add(np.asarray(scores), np.asarray(engaged))


def test_the_histogram_auc_is_exact_when_no_pair_shares_a_bin():
    rng = np.random.default_rng(3)
    # One score per logit bin of 10,000 (each 0.0032 wide): logits 0.01 apart.
    scores = 1.0 / (1.0 + np.exp(-rng.permutation(np.arange(-1000, 1000)) / 100.0))
    engaged = rng.random(2000) < scores  # higher scores engage more often
    hist = _histogram_auc(scores, engaged)
    assert hist.error_bound() == 0.0
    assert hist.value() == pytest.approx(ranking_metrics.auc(scores, engaged), abs=1e-12)


def test_the_histogram_auc_stays_within_its_bound_and_merges_in_any_order():
    rng = np.random.default_rng(4)
    scores = np.round(rng.beta(2, 5, 50_000), 3)  # many ties and shared bins
    engaged = rng.random(50_000) < scores
    exact = ranking_metrics.auc(scores, engaged)
    for bins in (10, 100, ranking_metrics.AUC_BINS):
        hist = _histogram_auc(scores, engaged, bins)
        assert abs(hist.value() - exact) <= hist.error_bound() + 1e-12, bins
    # Coarse bins: a real error, and a bound that covers it.
    coarse = _histogram_auc(scores, engaged, 10)
    assert coarse.error_bound() > abs(coarse.value() - exact) > 1e-4
    # Split into parts added and merged in another order: the same counts, the same value.
    parts = [_histogram_auc(scores[i::3], engaged[i::3]) for i in range(3)]
    merged = parts[2].merge(parts[0]).merge(parts[1])
    assert merged.value() == _histogram_auc(scores, engaged).value()


def test_the_auc_combiner_keeps_two_arrays_however_many_examples():
    [computation] = ranking_metrics.EngagementAUC().computations()
    combiner = computation.combiner
    acc = combiner.create_accumulator()
    rng = np.random.default_rng(5)
    for i in range(300):
        n = 20
        gains = (rng.random(n) < 0.3).astype(int)
        acc = combiner.add_input(acc, _user(rng.random(n).tolist(), gains.tolist(), f"u{i}"))
    assert acc.positive.sum() + acc.negative.sum() == 300 * 20
    assert acc.positive.shape == acc.negative.shape == (ranking_metrics.AUC_BINS,)
    out = {k.name: v for k, v in combiner.extract_output(acc).items()}
    assert 0.4 < out[ranking_metrics.AUC_NAME] < 0.6  # random scores
    assert 0 <= out[ranking_metrics.AUC_BOUND_NAME] < 1e-3


def test_saturated_probabilities_spread_over_the_logit_bins():
    # A confident model: engaged scores near 1, the others near 0, overlapping tails.
    rng = np.random.default_rng(6)
    logits = np.concatenate([rng.normal(6, 3, 5000), rng.normal(-6, 3, 20000)])
    engaged = np.arange(25_000) < 5000
    scores = 1.0 / (1.0 + np.exp(-logits))
    hist = _histogram_auc(scores, engaged)
    exact = ranking_metrics.auc(scores, engaged)
    assert abs(hist.value() - exact) <= hist.error_bound() < 1e-4
