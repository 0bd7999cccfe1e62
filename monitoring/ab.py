"""A/B analysis of the canary against stable, from the event log (docs/registry.md).

The experiment is the current canary: the answers of the ``stable`` label's version to
stable users and of the ``canary`` label's version to canary users, since the canary (or its
share of users) was last set. Users are split by a hash of their id, so the **user** is the
unit: every rate is a ratio over impressions, and its interval and the test of the
difference come from a Poisson GLM of each user's count with their impressions as exposure
and a heteroscedasticity-robust (HC1) covariance over users (statsmodels): the ratio of
sums, with a variance that holds however a user's answers correlate.

**A group-sequential test: a bounded number of looks, each at a share of the level.** The
evidence about the log CTR ratio is its information, 1 / variance. A power calculation
(statsmodels' `NormalIndPower`, for a relative CTR change of ``mde`` at level ``alpha / looks``
with ``power``) gives the information the test needs, and look k of ``looks`` happens at the
first point of a fixed time grid (every ``grid_seconds`` from the start) where the
information has reached k / ``looks`` of it. Each look tests at ``alpha / looks``, so over
all looks the chance of a false alarm stays below ``alpha`` (Bonferroni's inequality), however
the looks fall. A look's figures are those of the event log up to its grid time, which later
data cannot change: running ``aiqleads ab report`` again and again repeats the same looks and
adds none, so the test keeps its level however often anyone looks.

Nothing is decided before both arms have ``min_users`` users. A look with a significant CTR
drop rolls the canary back, one with a significant gain promotes it; at the last look (the
full information) without a significant difference the canary is promoted when the lift's
lower bound is above ``-mde`` (non-inferior within the change the test is powered for), else
rolled back. Before the last look, no significant difference means continue. Guardrails
(error rate, p95 latency per arm, from the gateways' metrics) roll a canary back as soon as
the minimum sample is there, whatever the test says.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import statsmodels.api as sm
from statsmodels.stats.power import NormalIndPower
from statsmodels.tools.sm_exceptions import PerfectSeparationWarning

from aiqleads.events.records import ENGAGEMENTS, Feedback, Impression

STABLE = "stable"
CANARY = "canary"
ARMS = (STABLE, CANARY)
# Per-impression rates: name -> the per-user count that is its numerator.
METRICS = {"ctr": "clicks", "inquiry_rate": "inquiries", "hit_rate": "hits"}
PRIMARY = "ctr"
PROMOTE = "promote"
ROLLBACK = "rollback"
CONTINUE = "continue"
_COUNTS = ("impressions", "clicks", "inquiries", "hits")


@dataclasses.dataclass(frozen=True)
class Design:
    """The test's parameters (docs/registry.md says how they were chosen)."""

    alpha: float = 0.05
    power: float = 0.8
    mde: float = 0.2  # relative CTR change the test is powered to see
    looks: int = 5  # at most this many tests, each at alpha / looks
    grid_seconds: float = 10.0  # looks fall on this grid from the start
    settle_seconds: float = 5.0  # grid times this close to now wait for late records
    min_users: int = 100  # per arm: no decision of any kind before it
    window_seconds: float = 1800.0  # attribution window of a feedback to its answer
    max_error_rate_increase: float = 0.01  # canary minus stable, absolute
    max_p95_ratio: float = 1.5  # canary p95 over stable p95 ...
    min_p95_increase_ms: float = 10.0  # ... and at least this much slower

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 0.5 or not 0.5 <= self.power < 1:
            raise ValueError("alpha must be in (0, 0.5) and power in [0.5, 1)")
        if not 0 < self.mde < 10 or self.min_users < 10 or not 1 <= self.looks <= 20:
            raise ValueError("mde must be in (0, 10), min_users >= 10 and looks in 1..20")
        if self.grid_seconds <= 0 or self.settle_seconds < 0:
            raise ValueError("grid_seconds must be > 0 and settle_seconds >= 0")
        if not 1 <= self.max_p95_ratio <= 100 or not 0 <= self.min_p95_increase_ms <= 60_000:
            raise ValueError("max_p95_ratio must be in 1..100 and min_p95_increase_ms in 0..60000")


@dataclasses.dataclass(frozen=True)
class Experiment:
    """Which versions the arms serve and since when."""

    stable_version: int
    canary_version: int
    start: float
    canary_fraction: float


@dataclasses.dataclass(frozen=True)
class Estimate:
    value: float
    low: float
    high: float

    def as_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Comparison:
    """Canary against stable on one rate: relative lift (rate ratio - 1) and its test."""

    lift: Estimate
    p_value: float


@dataclasses.dataclass(frozen=True)
class Guardrail:
    """What the gateways measured for one arm (None: not measured)."""

    error_rate: float | None = None
    p95_ms: float | None = None
    requests: float | None = None


@dataclasses.dataclass
class Report:
    experiment: Experiment
    design: Design
    decision: str
    reason: str
    cut: float  # the data are those up to this time
    look: int  # the last look taken (0: none yet)
    information: float  # 1 / variance of the log CTR ratio at the cut
    information_needed: float  # at the last look, from the power calculation
    users: dict[str, int]
    impressions: dict[str, int]
    rates: dict[str, dict[str, Estimate]]  # arm -> metric -> estimate
    comparisons: dict[str, Comparison]  # metric -> canary vs stable
    guardrails: dict[str, Guardrail]

    def as_dict(self) -> dict[str, Any]:
        return {
            "experiment": dataclasses.asdict(self.experiment),
            "design": dataclasses.asdict(self.design),
            "decision": self.decision,
            "reason": self.reason,
            "cut": self.cut,
            "look": self.look,
            "information": self.information,
            "information_needed": self.information_needed,
            "arms": {
                arm: {
                    "users": self.users.get(arm, 0),
                    "impressions": self.impressions.get(arm, 0),
                    **{m: e.as_dict() for m, e in self.rates.get(arm, {}).items()},
                    "guardrails": dataclasses.asdict(self.guardrails.get(arm, Guardrail())),
                }
                for arm in ARMS
            },
            "comparisons": {
                m: {"lift": c.lift.as_dict(), "p_value": c.p_value}
                for m, c in self.comparisons.items()
            },
        }


# -- per-user counts -------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ExperimentData:
    """The experiment's answers (request id, arm, user, time) and their attributed events
    (request id, event type, time), from which per-user counts up to any time follow."""

    answers: pd.DataFrame
    events: pd.DataFrame

    @classmethod
    def collect(
        cls,
        impressions: Iterable[Impression],
        feedback: Iterable[Feedback],
        experiment: Experiment,
        window_seconds: float,
    ) -> ExperimentData:
        """Answers of the two arms' versions since the start; each feedback once (by its
        id), when it came within ``window_seconds`` of its answer."""
        want = {
            (STABLE, experiment.stable_version): STABLE,
            (CANARY, experiment.canary_version): CANARY,
        }
        rows: dict[str, tuple[str, str, float]] = {}
        for imp in impressions:
            arm = want.get((imp.variant, imp.model_version))
            if arm is not None and imp.ts >= experiment.start:
                rows[imp.request_id] = (arm, imp.user_id, imp.ts)
        seen: set[str] = set()
        events: list[tuple[str, str, float]] = []
        for fb in feedback:
            if fb.feedback_id in seen or fb.request_id not in rows:
                continue
            if fb.ts - fb.issued_at > window_seconds:
                continue
            seen.add(fb.feedback_id)
            events.append((fb.request_id, fb.event_type, fb.ts))
        answers = pd.DataFrame(
            [(rid, arm, user, ts) for rid, (arm, user, ts) in rows.items()],
            columns=["request_id", "arm", "user", "ts"],
        )
        return cls(answers, pd.DataFrame(events, columns=["request_id", "event", "ts"]))

    def counts(self, until: float = math.inf) -> pd.DataFrame:
        """One row per (arm, user): first answer time, impressions, clicks, inquiries and
        hits (answers with an engagement), counting only what happened up to ``until``."""
        answers = self.answers[self.answers["ts"] <= until]
        events = self.events[
            (self.events["ts"] <= until) & self.events["request_id"].isin(answers["request_id"])
        ]
        flags = pd.DataFrame(
            {
                "request_id": events["request_id"],
                "clicks": events["event"].eq("click").astype(int),
                "inquiries": events["event"].eq("inquiry").astype(int),
                "hits": events["event"].isin(ENGAGEMENTS).astype(int),
            }
        )
        per_request = flags.groupby("request_id").agg(
            clicks=("clicks", "sum"), inquiries=("inquiries", "sum"), hits=("hits", "max")
        )
        joined = answers.join(per_request, on="request_id")
        for column in ("clicks", "inquiries", "hits"):
            joined[column] = joined[column].fillna(0).astype(int) if len(joined) else 0
        joined["impressions"] = 1
        out = joined.groupby(["arm", "user"], sort=True).agg(
            first=("ts", "min"),
            impressions=("impressions", "sum"),
            clicks=("clicks", "sum"),
            inquiries=("inquiries", "sum"),
            hits=("hits", "sum"),
        )
        result: pd.DataFrame = out.reset_index()
        return result


def time_reaching(counts: pd.DataFrame, users: int) -> float | None:
    """When both arms had at least ``users`` users (None: not yet)."""
    times = []
    for arm in ARMS:
        first = np.sort(counts.loc[counts["arm"] == arm, "first"].to_numpy())
        if len(first) < users:
            return None
        times.append(first[users - 1])
    return float(max(times))


# -- statistics (statsmodels) ------------------------------------------------------------------
def _glm(y: np.ndarray, exposure: np.ndarray, canary: np.ndarray | None) -> Any:
    columns = [np.ones(len(y))] if canary is None else [np.ones(len(y)), canary]
    model = sm.GLM(y, np.column_stack(columns), family=sm.families.Poisson(), exposure=exposure)
    with warnings.catch_warnings():
        # Every user with the same rate fits "perfectly": the estimate is still the ratio
        # of sums, and its robust variance is the (small) spread there is.
        warnings.simplefilter("ignore", PerfectSeparationWarning)
        return model.fit(cov_type="HC1")


def rate(counts: pd.DataFrame, column: str, alpha: float = 0.05) -> Estimate:
    """``sum(column) / sum(impressions)`` with a user-clustered interval."""
    y, exposure = counts[column].to_numpy(float), counts["impressions"].to_numpy(float)
    nan = Estimate(math.nan, math.nan, math.nan)
    if len(y) < 2 or exposure.sum() == 0:
        return nan
    if y.sum() == 0:
        return Estimate(0.0, 0.0, math.nan)
    fit = _glm(y, exposure, None)
    low, high = fit.conf_int(alpha)[0]
    return Estimate(math.exp(fit.params[0]), math.exp(low), math.exp(high))


def compare(counts: pd.DataFrame, column: str, alpha: float = 0.05) -> Comparison:
    """Canary against stable: lift = rate ratio - 1, its interval and the Wald p-value."""
    y, exposure = counts[column].to_numpy(float), counts["impressions"].to_numpy(float)
    canary = (counts["arm"] == CANARY).to_numpy(float)
    per_arm = [y[canary == a].sum() for a in (0.0, 1.0)]
    if min(per_arm) == 0 or min((canary == a).sum() for a in (0.0, 1.0)) < 2:
        return Comparison(Estimate(math.nan, math.nan, math.nan), math.nan)
    fit = _glm(y, exposure, canary)
    low, high = fit.conf_int(alpha)[1]
    ratio = math.exp(fit.params[1])
    return Comparison(
        Estimate(ratio - 1.0, math.exp(low) - 1.0, math.exp(high) - 1.0), float(fit.pvalues[1])
    )


def information(counts: pd.DataFrame, column: str = "clicks") -> float:
    """1 / variance of the log rate ratio of ``column`` per impression (0 while it cannot be
    estimated: an arm without users or without a count)."""
    canary = (counts["arm"] == CANARY).to_numpy(float)
    y = counts[column].to_numpy(float)
    if min((canary == a).sum() for a in (0.0, 1.0)) < 2:
        return 0.0
    if min(y[canary == a].sum() for a in (0.0, 1.0)) == 0:
        return 0.0
    fit = _glm(y, counts["impressions"].to_numpy(float), canary)
    variance = float(fit.cov_params()[1, 1])
    return 1.0 / variance if variance > 0 else 0.0


def information_needed(design: Design) -> float:
    """The information at which a test at ``alpha / looks`` sees a relative change of
    ``mde`` with ``power``: statsmodels' two-sample size n for a standardized effect of
    log(1 + mde), whose difference of means has variance 2 / n."""
    n = NormalIndPower().solve_power(
        effect_size=math.log1p(design.mde),
        alpha=design.alpha / design.looks,
        power=design.power,
        ratio=1.0,
    )
    return float(n) / 2.0


def minimum_detectable_lift(info: float, design: Design) -> float:
    """The relative CTR change a test at ``alpha / looks`` with ``info`` sees with ``power``."""
    effect = NormalIndPower().solve_power(
        nobs1=2.0 * info, alpha=design.alpha / design.looks, power=design.power, ratio=1.0
    )
    return math.expm1(float(effect))


# -- the decision ------------------------------------------------------------------------------
def guardrail_failure(guardrails: Mapping[str, Guardrail], design: Design) -> str | None:
    stable, canary = guardrails.get(STABLE, Guardrail()), guardrails.get(CANARY, Guardrail())
    if (
        canary.error_rate is not None
        and stable.error_rate is not None
        and canary.error_rate > stable.error_rate + design.max_error_rate_increase
    ):
        return (
            f"guardrail: canary error rate {canary.error_rate:.2%} > stable "
            f"{stable.error_rate:.2%} + {design.max_error_rate_increase:.2%}"
        )
    if canary.p95_ms is not None and stable.p95_ms is not None:
        slower = canary.p95_ms - stable.p95_ms
        if canary.p95_ms > stable.p95_ms * design.max_p95_ratio and (
            slower > design.min_p95_increase_ms
        ):
            return (
                f"guardrail: canary p95 {canary.p95_ms:.1f} ms > {design.max_p95_ratio:g} x "
                f"stable {stable.p95_ms:.1f} ms"
            )
    return None


def analyze(
    impressions: Iterable[Impression],
    feedback: Iterable[Feedback],
    experiment: Experiment,
    design: Design,
    now: float,
    guardrails: Mapping[str, Guardrail] | None = None,
) -> Report:
    """The report and the decision on the event log's records (any order, any extra)."""
    guardrails = dict(guardrails or {})
    data = ExperimentData.collect(impressions, feedback, experiment, design.window_seconds)
    needed = information_needed(design)
    decision, reason = CONTINUE, f"below the minimum sample: {design.min_users} users per arm"
    look, cut = 0, now
    enough = time_reaching(data.counts(now), design.min_users)
    if enough is not None:
        failure = guardrail_failure(guardrails, design)
        if failure is not None:
            decision, reason = ROLLBACK, failure
        else:
            decision, reason, look, cut = _sequential(
                data, design, needed, experiment.start, enough, now
            )
    counts = data.counts(cut)
    rates = {
        arm: {
            m: rate(counts[counts["arm"] == arm], col, design.alpha) for m, col in METRICS.items()
        }
        for arm in ARMS
    }
    return Report(
        experiment=experiment,
        design=design,
        decision=decision,
        reason=reason,
        cut=cut,
        look=look,
        information=information(counts),
        information_needed=needed,
        users={arm: int((counts["arm"] == arm).sum()) for arm in ARMS},
        impressions={
            arm: int(counts.loc[counts["arm"] == arm, "impressions"].sum()) for arm in ARMS
        },
        rates=rates,
        comparisons={m: compare(counts, col, design.alpha) for m, col in METRICS.items()},
        guardrails=guardrails,
    )


def _sequential(
    data: ExperimentData, design: Design, needed: float, start: float, enough: float, now: float
) -> tuple[str, str, int, float]:
    """Walk the grid from the minimum sample on; at each grid time whose information crosses
    the next looks' thresholds, test (one test, however many thresholds it crossed); stop at
    the first decision. Returns (decision, reason, looks taken, the last look's time)."""
    step, last = design.grid_seconds, now - design.settle_seconds
    taken, cut = 0, now
    t = start + step * math.ceil(max(enough - start, 0.0) / step)
    while t <= last and taken < design.looks:
        counts = data.counts(t)
        reached = min(design.looks, math.floor(information(counts) / needed * design.looks))
        if reached > taken:
            taken, cut = reached, t
            test = compare(counts, METRICS[PRIMARY], design.alpha / design.looks)
            verdict = _verdict(test, design, taken, counts)
            if verdict is not None:
                return verdict[0], verdict[1], taken, t
        t += step
    if taken == 0:
        reason = f"look 1 of {design.looks} needs information {needed / design.looks:.0f}"
        return CONTINUE, reason, 0, now
    reason = (
        f"look {taken} of {design.looks}: no significant difference yet; the next look needs "
        f"information {needed * (taken + 1) / design.looks:.0f}"
    )
    return CONTINUE, reason, taken, cut


def _verdict(
    ctr: Comparison, design: Design, look: int, counts: pd.DataFrame
) -> tuple[str, str] | None:
    """The decision of one look (its test at alpha / looks), or None to continue."""
    users = "/".join(str(int((counts["arm"] == arm).sum())) for arm in ARMS)
    where = f"look {look} of {design.looks} ({users} stable/canary users)"
    lift, p = ctr.lift, ctr.p_value
    if math.isnan(p):
        return None
    level = design.alpha / design.looks
    text = f"CTR lift {lift.value:+.1%} [{lift.low:+.1%}, {lift.high:+.1%}], p={p:.3g} < {level:g}"
    if p < level:
        if lift.value < 0:
            return ROLLBACK, f"{where}: canary worse, {text}"
        return PROMOTE, f"{where}: canary better, {text}"
    if look < design.looks:
        return None
    text = text.replace(" < ", " >= ")
    if lift.low > 1.0 / (1.0 + design.mde) - 1.0:
        return PROMOTE, f"{where}: no significant difference, non-inferior ({text})"
    return ROLLBACK, f"{where}: no significant gain and not shown non-inferior ({text})"
