"""Online quality per model version and variant, from the event log's records.

An *arm* is a (model version, variant) pair. For each arm:

- impressions, distinct users, and shown items (the sum of the answers' lengths);
- events of each type attributed to the arm's answers within the attribution window
  (a feedback reported more than ``window_seconds`` after its answer does not count);
- hits: answers with at least one engagement (click, inquiry or purchase; a view is not one)
  within the window, so hit rate@k = hits / impressions;
- engaged items: distinct (answer, lead) pairs with an engagement, so precision@k =
  engaged items / shown items.

Feedback and impressions may arrive in either order (a gateway writes feedback at once and
impressions in batches), so the two are joined by request id in a bounded table: a feedback
waits there until its impression arrives, and counts only then. Rates are thus over logged
impressions; a feedback whose impression was never logged (sampled away under overload)
stays out of them and is counted as unmatched.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import Counter, OrderedDict
from typing import Any

from scipy import stats

from aiqleads.events.log import EventLog, entry_id_at
from aiqleads.events.records import (
    ENGAGEMENTS,
    FEEDBACK_STREAM,
    IMPRESSIONS_STREAM,
    Feedback,
    Impression,
)

DEFAULT_WINDOW_SECONDS = 1_800.0
MAX_PENDING = 1_000_000
MAX_USERS_PER_ARM = 1_000_000
Arm = tuple[int, str]


@dataclasses.dataclass
class ArmCounts:
    impressions: int = 0
    shown_items: int = 0
    hits: int = 0
    engaged_items: int = 0
    events: Counter[str] = dataclasses.field(default_factory=Counter)
    users: set[str] = dataclasses.field(default_factory=set)

    @property
    def rates(self) -> dict[str, tuple[int, int]]:
        """Each rate as (numerator, denominator)."""
        n = self.impressions
        return {
            "ctr": (self.events["click"], n),
            "inquiry_rate": (self.events["inquiry"], n),
            "purchase_rate": (self.events["purchase"], n),
            "hit_rate": (self.hits, n),
            "precision": (self.engaged_items, self.shown_items),
        }


@dataclasses.dataclass
class _Request:
    arm: Arm
    ts: float
    seen: bool = False
    engaged: set[str] = dataclasses.field(default_factory=set)
    pending: Counter[str] = dataclasses.field(default_factory=Counter)
    pending_leads: set[str] = dataclasses.field(default_factory=set)


class OnlineQuality:
    """Accumulates impressions and feedback into per-arm counts."""

    def __init__(
        self, window_seconds: float = DEFAULT_WINDOW_SECONDS, max_pending: int = MAX_PENDING
    ) -> None:
        self.window = window_seconds
        self.max_pending = max_pending
        self.arms: dict[Arm, ArmCounts] = {}
        self.unmatched_feedback = 0
        self.outside_window = 0
        self.last_ts = 0.0
        self._requests: OrderedDict[str, _Request] = OrderedDict()

    def _arm(self, arm: Arm) -> ArmCounts:
        counts = self.arms.get(arm)
        if counts is None:
            counts = self.arms[arm] = ArmCounts()
        return counts

    def _request(self, request_id: str, arm: Arm, ts: float) -> _Request:
        req = self._requests.get(request_id)
        if req is None:
            req = self._requests[request_id] = _Request(arm, ts)
            while len(self._requests) > self.max_pending:
                _, dropped = self._requests.popitem(last=False)
                self.unmatched_feedback += 0 if dropped.seen else sum(dropped.pending.values())
        return req

    def add_impression(self, imp: Impression) -> None:
        arm = (imp.model_version, imp.variant)
        counts = self._arm(arm)
        counts.impressions += 1
        counts.shown_items += len(imp.lead_ids)
        if len(counts.users) < MAX_USERS_PER_ARM:
            counts.users.add(imp.user_id)
        self.last_ts = max(self.last_ts, imp.ts)
        req = self._request(imp.request_id, arm, imp.ts)
        if req.seen:
            return
        req.seen = True
        for event, n in req.pending.items():
            counts.events[event] += n
        for lead in req.pending_leads:
            self._engage(counts, req, lead)
        req.pending.clear()
        req.pending_leads.clear()

    def add_feedback(self, fb: Feedback) -> None:
        self.last_ts = max(self.last_ts, fb.ts)
        if fb.ts - fb.issued_at > self.window:
            self.outside_window += 1
            return
        req = self._request(fb.request_id, (fb.model_version, fb.variant), fb.issued_at)
        engaged = fb.event_type in ENGAGEMENTS
        if not req.seen:
            req.pending[fb.event_type] += 1
            if engaged:
                req.pending_leads.add(fb.lead_id)
            return
        counts = self._arm(req.arm)
        counts.events[fb.event_type] += 1
        if engaged:
            self._engage(counts, req, fb.lead_id)

    @staticmethod
    def _engage(counts: ArmCounts, req: _Request, lead_id: str) -> None:
        if lead_id in req.engaged:
            return
        if not req.engaged:
            counts.hits += 1
        req.engaged.add(lead_id)
        counts.engaged_items += 1

    def expire(self, now: float) -> None:
        """Forget answers older than the window; their waiting feedback becomes unmatched."""
        horizon = now - self.window
        while self._requests:
            request_id, req = next(iter(self._requests.items()))
            if req.ts >= horizon:
                return
            del self._requests[request_id]
            if not req.seen:
                self.unmatched_feedback += sum(req.pending.values())

    def totals(self) -> ArmCounts:
        """All arms together."""
        total = ArmCounts()
        for counts in self.arms.values():
            total.impressions += counts.impressions
            total.shown_items += counts.shown_items
            total.hits += counts.hits
            total.engaged_items += counts.engaged_items
            total.events.update(counts.events)
            total.users |= counts.users
        return total


def read_log(
    url: str,
    since_seconds: float,
    window_seconds: float = DEFAULT_WINDOW_SECONDS,
    timeout_seconds: float = 5.0,
) -> OnlineQuality:
    """The quality of the answers the event store at ``url`` logged in the last
    ``since_seconds``, with their feedback; feedback still waiting for its answer is counted
    unmatched. An `EventLogError` when the store does not answer."""
    quality = OnlineQuality(window_seconds)
    log = EventLog(url, timeout_seconds=timeout_seconds)
    start = entry_id_at(time.time() - since_seconds)
    try:
        log.ping()
        for entry in log.range(IMPRESSIONS_STREAM, start=start):
            quality.add_impression(Impression.decode(entry.raw))
        for entry in log.range(FEEDBACK_STREAM, start=start):
            quality.add_feedback(Feedback.decode(entry.raw))
    finally:
        log.close()
    quality.expire(math.inf)
    return quality


def proportion_ci(successes: int, trials: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion (scipy); (nan, nan) without trials."""
    if trials <= 0:
        return math.nan, math.nan
    ci = stats.binomtest(min(successes, trials), trials).proportion_ci(level, method="wilson")
    return float(ci.low), float(ci.high)


RATE_NAMES = {
    "ctr": "CTR",
    "inquiry_rate": "inquiry rate",
    "purchase_rate": "purchase rate",
    "hit_rate": "hit rate@k",
    "precision": "precision@k",
}


def report_rows(quality: OnlineQuality, level: float = 0.95) -> list[dict[str, Any]]:
    """One row per arm (and one for all arms): counts, rates and their intervals."""
    rows = []
    arms = sorted(quality.arms.items(), key=lambda item: (item[0][1], item[0][0]))
    for (version, variant), counts in [*arms, ((None, "all"), quality.totals())]:
        row: dict[str, Any] = {
            "model_version": version,
            "variant": variant,
            "impressions": counts.impressions,
            "users": len(counts.users),
        }
        for name, (k, n) in counts.rates.items():
            low, high = proportion_ci(k, n, level)
            row[name] = {"value": k / n if n else math.nan, "low": low, "high": high, "n": n}
        rows.append(row)
    return rows
