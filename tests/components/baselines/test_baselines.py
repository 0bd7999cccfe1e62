"""Baselines and ranking metrics on hand-made events, expected values derived by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from components.baselines import metrics
from components.baselines.item_knn import ItemKNN
from components.baselines.metrics import ranking_metrics
from components.baselines.popularity import RegionalPopularity

LEADS = np.array(["a", "b", "c", "d"])
REGIONS = np.array(["n", "n", "s", "s"])


def _events(rows):
    return pd.DataFrame(rows, columns=["user_id", "lead_id", "event_type"])


def test_regional_popularity_puts_the_users_region_first():
    ev = _events(
        [
            ("u1", "a", "view"),
            ("u2", "c", "purchase"),  # c: 8
            ("u2", "d", "click"),  # d: 2
            ("u3", "b", "inquiry"),  # b: 4
        ]
    )
    pop = RegionalPopularity(LEADS, REGIONS).fit(ev)
    np.testing.assert_array_equal(pop.scores, [1.0, 4.0, 8.0, 2.0])
    # u1 engaged in region n: n leads (a=1, b=4) get +9 and come first.
    assert list(LEADS[np.argsort(-pop.score("u1"))]) == ["b", "a", "c", "d"]
    # cold user: global order.
    assert list(LEADS[np.argsort(-pop.score("new"))]) == ["c", "b", "d", "a"]


def test_item_knn_recommends_co_engaged_leads():
    # u1 and u2 both viewed a and b; u3 viewed c and d. u4 viewed only a -> b is closest.
    ev = _events(
        [
            ("u1", "a", "view"),
            ("u1", "b", "view"),
            ("u2", "a", "view"),
            ("u2", "b", "view"),
            ("u3", "c", "view"),
            ("u3", "d", "view"),
            ("u4", "a", "view"),
        ]
    )
    knn = ItemKNN(LEADS, neighbours=3).fit(ev)
    # Columns a=(1,1,0,1)*log2, b=(1,1,0,0)*log2: cos(a, b) = 2 / (sqrt(3) sqrt(2)).
    assert knn.sim[0, 1] == pytest.approx(2 / math.sqrt(6), rel=1e-5)
    assert knn.sim[0, 2] == 0.0
    scores = knn.score("u4")
    assert LEADS[np.argmax(scores)] == "b"
    assert not knn.score("nobody").any()


def test_ranking_metrics_by_hand():
    gains = {"x": 4.0, "y": 1.0}
    m = ranking_metrics(["y", "z", "x"], gains, k=2)
    # top-2 = y (gain 1) at rank 1: DCG = 1; ideal = 15/1 + 1/log2(3).
    assert m["hr"] == 1.0
    assert m["recall"] == 0.5
    assert m["ndcg"] == pytest.approx(1.0 / (15.0 + 1.0 / math.log2(3)))
    assert ranking_metrics(["z"], gains, k=1) == {"hr": 0.0, "recall": 0.0, "ndcg": 0.0}
    with pytest.raises(ValueError):
        ranking_metrics(["x"], {}, k=1)


def test_top_k_formulas_by_hand():
    # Ranked relevance: miss, hit, hit, miss, hit; 3 relevant items in all.
    relevant = np.array([False, True, True, False, True])
    assert metrics.relevant_in_top_k(relevant, 1) == 0
    assert metrics.relevant_in_top_k(relevant, 4) == 2
    assert metrics.relevant_in_top_k([True, False], 10) == 1  # k beyond the list
    assert metrics.hit_rate(0) == 0.0 and metrics.hit_rate(2) == 1.0
    assert metrics.precision(2, 4) == 0.5
    assert metrics.recall(2, 3) == pytest.approx(2 / 3)
