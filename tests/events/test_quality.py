"""Online quality from records: counts derived by hand, both arrival orders, the window."""

from __future__ import annotations

import math

import pytest

from aiqleads.events.quality import OnlineQuality, proportion_ci, report_rows
from aiqleads.events.records import Feedback, Impression

T0 = 1_765_000_000.0


def imp(rid, version=1, variant="stable", user="u1", leads=("a", "b", "c", "d"), at=T0):
    return Impression(
        rid, at, user, version, variant, len(leads), leads, (0.5,) * len(leads), "miss"
    )


def fb(rid, lead, event, version=1, variant="stable", at=T0 + 10, issued=T0, fid=None):
    return Feedback(
        fid or f"{rid}-{lead}-{event}", rid, at, "u1", lead, event, version, variant, issued
    )


def test_counts_per_arm_derived_by_hand():
    q = OnlineQuality(window_seconds=600)
    q.add_impression(imp("r1"))
    q.add_impression(imp("r2", user="u2"))
    q.add_impression(imp("r3", version=2, variant="canary"))
    q.add_feedback(fb("r1", "a", "view"))
    q.add_feedback(fb("r1", "a", "click"))
    q.add_feedback(fb("r1", "b", "click"))  # a second engaged lead of the same answer
    q.add_feedback(fb("r1", "a", "inquiry"))  # same lead again: not a new engaged item
    q.add_feedback(fb("r2", "c", "view"))  # a view alone is no engagement
    q.add_feedback(fb("r3", "d", "purchase", version=2, variant="canary"))

    stable, canary = q.arms[(1, "stable")], q.arms[(2, "canary")]
    assert (stable.impressions, len(stable.users), stable.shown_items) == (2, 2, 8)
    assert stable.rates == {
        "ctr": (2, 2),
        "inquiry_rate": (1, 2),
        "purchase_rate": (0, 2),
        "hit_rate": (1, 2),  # r1 only
        "precision": (2, 8),  # (r1, a) and (r1, b)
    }
    assert canary.rates["hit_rate"] == (1, 1) and canary.rates["precision"] == (1, 4)
    total = q.totals()
    assert (total.impressions, total.hits, total.engaged_items) == (3, 2, 3)


def test_feedback_before_its_impression_counts_once_it_arrives():
    q = OnlineQuality()
    q.add_feedback(fb("r1", "a", "click"))
    assert (1, "stable") not in q.arms  # nothing counted while the answer is unknown
    q.add_impression(imp("r1"))
    assert q.arms[(1, "stable")].rates["ctr"] == (1, 1)
    assert q.arms[(1, "stable")].hits == 1


def test_the_same_answer_logged_twice_counts_its_feedback_once():
    q = OnlineQuality()
    q.add_impression(imp("r1"))
    q.add_feedback(fb("r1", "a", "click"))
    q.add_impression(imp("r1"))
    counts = q.arms[(1, "stable")]
    assert counts.hits == 1 and counts.events["click"] == 1


def test_feedback_after_the_window_does_not_count():
    q = OnlineQuality(window_seconds=60)
    q.add_impression(imp("r1"))
    q.add_feedback(fb("r1", "a", "click", at=T0 + 61))
    assert q.arms[(1, "stable")].events["click"] == 0 and q.outside_window == 1


def test_feedback_whose_impression_never_comes_is_unmatched_after_the_window():
    q = OnlineQuality(window_seconds=60)
    q.add_feedback(fb("r1", "a", "click"))
    q.add_feedback(fb("r1", "a", "view", fid="x"))
    q.expire(now=T0 + 30)
    assert q.unmatched_feedback == 0
    q.expire(now=T0 + 61)
    assert q.unmatched_feedback == 2
    q.add_impression(imp("r1", at=T0 + 62))  # too late to join: counts as an answer only
    assert q.arms[(1, "stable")].events["click"] == 0


def test_pending_table_is_bounded():
    q = OnlineQuality(max_pending=10)
    for i in range(25):
        q.add_feedback(fb(f"r{i}", "a", "click"))
    assert q.unmatched_feedback == 15  # the oldest 15 were pushed out
    q.add_impression(imp("r0"))  # pushed out: its click is gone
    q.add_impression(imp("r24"))  # still waiting: its click counts
    assert q.arms[(1, "stable")].events["click"] == 1


def test_wilson_interval_matches_a_hand_computation():
    low, high = proportion_ci(10, 100)
    # Wilson: (p + z^2/2n -/+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n), z = 1.959964
    z, n, p = 1.959964, 100, 0.1
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert (low, high) == pytest.approx((centre - half, centre + half), abs=1e-6)
    assert all(math.isnan(v) for v in proportion_ci(0, 0))


def test_report_rows_have_every_figure_with_an_interval():
    q = OnlineQuality()
    q.add_impression(imp("r1"))
    q.add_feedback(fb("r1", "a", "click"))
    rows = report_rows(q)
    assert [(r["model_version"], r["variant"]) for r in rows] == [(1, "stable"), (None, "all")]
    ctr = rows[0]["ctr"]
    assert ctr["value"] == 1.0 and ctr["n"] == 1 and ctr["low"] < 1.0 <= ctr["high"]
