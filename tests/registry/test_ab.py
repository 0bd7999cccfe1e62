"""The A/B analysis on hand-made event records: rates, lift, the sequential decision.

Each arm's users get a fixed number of answers and clicks, so the rates and their ratio are
known exactly: a rate is clicks over impressions summed over users, the lift the ratio of the
two rates minus one.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from aiqleads.events.records import Feedback, Impression
from monitoring import ab

START = 1_000_000.0
STABLE_V, CANARY_V = 11, 12


def _traffic(
    users_per_arm: int,
    answers_per_user: int,
    clicked: Callable[[str, int], bool],
    seconds: float = 100.0,
    start: float = START,
    rid_prefix: str = "r",
) -> tuple[list[Impression], list[Feedback]]:
    """Each user of each arm gets ``answers_per_user`` answers spread over ``seconds``; the
    ``a``-th answer of an ``arm`` user gets a click (and, for hit rate, nothing else) if
    ``clicked(arm, a)``."""
    impressions, feedback = [], []
    n = 0
    for arm, version in (("stable", STABLE_V), ("canary", CANARY_V)):
        for u in range(users_per_arm):
            for a in range(answers_per_user):
                ts = start + seconds * (a * users_per_arm + u) / (users_per_arm * answers_per_user)
                rid = f"{rid_prefix}{n}"
                n += 1
                user = f"{arm}-{u}"
                impressions.append(
                    Impression(rid, ts, user, version, arm, 10, ("l1",), (0.5,), "miss")
                )
                if clicked(arm, a):
                    feedback.append(
                        Feedback(f"f{rid}", rid, ts + 0.1, user, "l1", "click", version, arm, ts)
                    )
    return impressions, feedback


def _first(clicks: dict[str, int]) -> Callable[[str, int], bool]:
    """The first ``clicks[arm]`` answers of each user are clicked."""
    return lambda arm, a: a < clicks[arm]


def _at_rate(ctr: dict[str, float], seed: int) -> Callable[[str, int], bool]:
    """Each answer is clicked with its arm's probability (seeded)."""
    rng = np.random.default_rng(seed)
    return lambda arm, _a: bool(rng.random() < ctr[arm])


def _experiment() -> ab.Experiment:
    return ab.Experiment(STABLE_V, CANARY_V, START, 0.5)


def test_rates_and_lift_are_ratios_of_sums():
    imps, fb = _traffic(40, 10, _first({"stable": 2, "canary": 1}))
    counts = ab.ExperimentData.collect(imps, fb, _experiment(), 1800).counts()
    stable = ab.rate(counts[counts["arm"] == "stable"], "clicks")
    canary = ab.rate(counts[counts["arm"] == "canary"], "clicks")
    assert stable.value == pytest.approx(80 / 400) and canary.value == pytest.approx(40 / 400)
    # Every user has the same rate: no spread between users, so the interval is the point.
    assert stable.low == pytest.approx(0.2, abs=1e-6) and stable.high == pytest.approx(
        0.2, abs=1e-6
    )
    lift = ab.compare(counts, "clicks").lift
    assert lift.value == pytest.approx(0.1 / 0.2 - 1)


def test_feedback_outside_the_window_or_repeated_does_not_count():
    imps, _ = _traffic(2, 1, _first({"stable": 0, "canary": 0}))
    click = Feedback("f0", "r0", START + 1, "stable-0", "l1", "click", STABLE_V, "stable", START)
    late = Feedback("f1", "r1", START + 4000, "stable-1", "l1", "click", STABLE_V, "stable", START)
    counts = ab.ExperimentData.collect(imps, [click, click, late], _experiment(), 1800).counts()
    assert counts.set_index(["arm", "user"])["clicks"].to_dict() == {
        ("canary", "canary-0"): 0,
        ("canary", "canary-1"): 0,
        ("stable", "stable-0"): 1,  # once, though logged twice
        ("stable", "stable-1"): 0,  # its click came after the attribution window
    }


def test_no_decision_below_the_minimum_sample():
    imps, fb = _traffic(20, 10, _first({"stable": 5, "canary": 0}))
    report = ab.analyze(imps, fb, _experiment(), ab.Design(min_users=30), now=START + 200)
    assert report.decision == ab.CONTINUE and "minimum sample" in report.reason


def test_a_large_drop_is_rolled_back_at_the_first_look_and_later_looks_agree():
    imps, fb = _traffic(
        60, 10, _at_rate({"stable": 0.3, "canary": 0.1}, seed=0), seconds=100, rid_prefix="r0-"
    )
    design = ab.Design(min_users=30, mde=0.3, grid_seconds=5, settle_seconds=0)
    first = ab.analyze(imps, fb, _experiment(), design, now=START + 101)
    assert first.decision == ab.ROLLBACK and first.look == 1, first.reason
    assert first.comparisons["ctr"].lift.value < 0 and first.comparisons["ctr"].p_value < 0.01
    # More data and a later look at the report change nothing: the look is at a fixed time.
    more_imps, more_fb = _traffic(
        60,
        10,
        _at_rate({"stable": 0.3, "canary": 0.3}, seed=1),
        start=START + 101,
        rid_prefix="r1-",
    )
    again = ab.analyze([*imps, *more_imps], [*fb, *more_fb], _experiment(), design, START + 500)
    assert (again.decision, again.look, again.cut, again.reason) == (
        first.decision,
        first.look,
        first.cut,
        first.reason,
    )


def test_equal_arms_continue_then_are_promoted_as_non_inferior_at_the_last_look():
    design = ab.Design(min_users=30, mde=0.5, looks=2, grid_seconds=5, settle_seconds=0)
    needed = ab.information_needed(design)
    imps, fb = _traffic(100, 8, _first({"stable": 2, "canary": 2}), seconds=100)
    report = ab.analyze(imps, fb, _experiment(), design, now=START + 101)
    counts = ab.ExperimentData.collect(imps, fb, _experiment(), 1800).counts()
    assert ab.information(counts) > needed  # the last look is reached within the data
    assert report.decision == ab.PROMOTE and "non-inferior" in report.reason
    assert report.comparisons["ctr"].lift.value == pytest.approx(0.0, abs=1e-9)


def test_a_guardrail_rolls_back_once_the_minimum_sample_is_there():
    imps, fb = _traffic(40, 5, _first({"stable": 1, "canary": 1}))
    slow = {
        "stable": ab.Guardrail(error_rate=0.0, p95_ms=8.0),
        "canary": ab.Guardrail(error_rate=0.0, p95_ms=40.0),
    }
    design = ab.Design(min_users=30)
    report = ab.analyze(imps, fb, _experiment(), design, START + 200, guardrails=slow)
    assert report.decision == ab.ROLLBACK and "p95" in report.reason
    failing = {"stable": ab.Guardrail(error_rate=0.0), "canary": ab.Guardrail(error_rate=0.05)}
    assert "error rate" in (ab.guardrail_failure(failing, design) or "")
    few = ab.analyze(imps[:10], fb, _experiment(), design, START + 200, guardrails=slow)
    assert few.decision == ab.CONTINUE  # below the minimum sample: no decision at all


def test_the_power_calculation_matches_the_normal_approximation():
    # Two-sided z test: information = ((z_{1-a/2} + z_{power}) / log(1 + mde))^2.
    design = ab.Design(alpha=0.05, power=0.8, mde=0.2, looks=1)
    z = 1.959964 + 0.841621
    assert ab.information_needed(design) == pytest.approx((z / math.log(1.2)) ** 2, rel=1e-3)
    assert ab.minimum_detectable_lift(ab.information_needed(design), design) == pytest.approx(
        0.2, rel=1e-3
    )
