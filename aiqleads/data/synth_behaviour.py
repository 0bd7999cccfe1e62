"""The user behaviour model shared by the synthetic generator and the King County adapter.

Users have hidden preferences: a home point and a radius, a budget and preferred property
types. Each view picks, among the candidate leads a results page shows (drawn from the
user's home region or anywhere in the user's metro), the one that matches best up to noise;
each view then moves down the funnel view -> click -> inquiry -> purchase with probabilities
that grow with the match. The signal is therefore learnable and its ground truth known.

Everything is vectorised over views and processed in bounded chunks. Random draws do not
depend on drift hooks, so a drift changes only the days it applies to.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from numpy.typing import NDArray

SECONDS_PER_DAY = 86_400
EARTH_KM_PER_DEGREE = 111.195
VIEW, CLICK, INQUIRY, PURCHASE = 0, 1, 2, 3
"""Event codes, in funnel order (index into `contracts.EVENT_TYPES`)."""

CANDIDATES_PER_VIEW = 24
"""Leads a view chooses among: about one results page of a listings portal. The more a user
sees, the more their choice follows their own preferences rather than what happens to be
listed near them (8, the value before 2026-11-29, made per-region popularity nearly as good
as knowing the preferences; docs/model.md)."""
MAX_CANDIDATES_PER_VIEW = 200
LOCAL_CANDIDATE_SHARE = 0.6
"""Share of candidates drawn from the user's home region; the rest from the whole metro."""
CHOICE_TEMPERATURE = 0.35
REQUEST_SHARE = 0.4
"""Share of views that come from a recommendation request (and carry its id)."""
OTHER_TYPE_AFFINITY = 0.25
PRICE_TOLERANCE = 0.35
"""Standard deviation of log(price / budget) that still feels affordable."""
CHUNK = 131_072
REDRAWS = 6
"""How often a view whose candidates are all off the market draws new ones."""

# Funnel probabilities: base + slope * match, per step (click | view, inquiry | click,
# purchase | inquiry).
FUNNEL_BASE = np.array([0.04, 0.08, 0.05])
FUNNEL_SLOPE = np.array([0.50, 0.50, 0.40])
# Mean delays in seconds after the previous step.
STEP_DELAY = np.array([90.0, 1_800.0, 129_600.0])
STEP_MIN_DELAY = np.array([1, 1, 60])

_GroupIndex = tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]
"""Leads grouped by a code: the leads in code order, each code's first position and count."""


@dataclasses.dataclass(frozen=True)
class Catalogue:
    """Leads as arrays. Days are indices from the first simulated day (may be negative)."""

    latitude: NDArray[np.float64]
    longitude: NDArray[np.float64]
    price: NDArray[np.float64]  # NaN when unknown
    type_code: NDArray[np.int64]
    region_code: NDArray[np.int64]
    group_code: NDArray[np.int64]  # metro
    available_from: NDArray[np.int64]  # first day on the market
    available_until: NDArray[np.int64]  # first day off the market (exclusive)

    def __len__(self) -> int:
        return len(self.latitude)


@dataclasses.dataclass(frozen=True)
class Population:
    """Users' hidden preferences and activity, as arrays."""

    home_latitude: NDArray[np.float64]
    home_longitude: NDArray[np.float64]
    radius_km: NDArray[np.float64]
    budget: NDArray[np.float64]
    type_affinity: NDArray[np.float64]  # (users, property types), 1.0 for preferred types
    home_region: NDArray[np.int64]
    group_code: NDArray[np.int64]
    activity: NDArray[np.float64]  # relative activity weight (Zipf-like)
    first_day: NDArray[np.int64]  # first day the user can act (signup)

    def __len__(self) -> int:
        return len(self.home_latitude)


@dataclasses.dataclass(frozen=True)
class DriftHooks:
    """Per-day changes of behaviour, used by drift scenarios (None: no change)."""

    # (days, 3) multipliers of the step probabilities
    funnel_scale: NDArray[np.float64] | None = None
    # (days,) share of views sent to redirect_leads
    redirect_share: NDArray[np.float64] | None = None
    redirect_leads: NDArray[np.int64] | None = None
    redirect_group: int | None = None  # only users of this metro are redirected


@dataclasses.dataclass(frozen=True)
class Events:
    """Simulated events, unordered: user and lead indices, funnel code, seconds from day 0."""

    user: NDArray[np.int64]
    lead: NDArray[np.int64]
    code: NDArray[np.int8]
    seconds: NDArray[np.int64]
    request: NDArray[np.int64]  # request number, -1 when none

    def __len__(self) -> int:
        return len(self.user)


def distance_km(
    lat1: NDArray[np.float64] | float,
    lon1: NDArray[np.float64] | float,
    lat2: NDArray[np.float64] | float,
    lon2: NDArray[np.float64] | float,
) -> NDArray[np.float64]:
    """Equirectangular distance in km (accurate to well under 1 % at city scale)."""
    mean_lat = np.radians((lat1 + lat2) / 2.0)
    dx = (lon2 - lon1) * np.cos(mean_lat)
    dy = lat2 - lat1
    return EARTH_KM_PER_DEGREE * np.hypot(dx, dy)


def match_score(
    pop: Population, cat: Catalogue, users: NDArray[np.int64], leads: NDArray[np.int64]
) -> NDArray[np.float64]:
    """How well each lead suits each user, in [0, 1]: place x price x type."""
    d = distance_km(
        pop.home_latitude[users],
        pop.home_longitude[users],
        cat.latitude[leads],
        cat.longitude[leads],
    )
    place = np.exp(-0.5 * (d / pop.radius_km[users]) ** 2)
    price = cat.price[leads]
    with np.errstate(invalid="ignore", divide="ignore"):
        log_ratio = np.log(price / pop.budget[users])
    fit = np.where(np.isfinite(log_ratio), np.exp(-0.5 * (log_ratio / PRICE_TOLERANCE) ** 2), 0.5)
    kind = pop.type_affinity[users, cat.type_code[leads]]
    score: NDArray[np.float64] = place * fit * kind
    return score


def expected_views(events: int) -> int:
    """Views to simulate for about ``events`` events in all (with a results page of
    candidates the funnel adds ~25-35 %: 1.35 on the default set, 1.26 on the smoke set)."""
    return max(1, int(round(events / 1.3)))


def _group_index(codes: NDArray[np.int64], n_groups: int) -> _GroupIndex:
    order = np.argsort(codes, kind="stable")
    counts = np.bincount(codes, minlength=n_groups)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return order, starts, counts


def simulate(
    pop: Population,
    cat: Catalogue,
    days: int,
    views: int,
    seed: np.random.SeedSequence,
    hooks: DriftHooks | None = None,
    candidates: int = CANDIDATES_PER_VIEW,
) -> Events:
    """Simulate about ``views`` views and the funnel events that follow them; each view
    chooses among ``candidates`` leads."""
    if not 1 <= candidates <= MAX_CANDIDATES_PER_VIEW:
        raise ValueError(f"candidates must be in [1, {MAX_CANDIDATES_PER_VIEW}], got {candidates}")
    hooks = hooks or DriftHooks()
    rng = np.random.default_rng(seed)
    n_regions = int(max(cat.region_code.max(), pop.home_region.max())) + 1
    n_groups = int(max(cat.group_code.max(), pop.group_code.max())) + 1
    by_region = _group_index(cat.region_code, n_regions)
    by_group = _group_index(cat.group_code, n_groups)
    weights = pop.activity / pop.activity.sum()
    users = rng.choice(len(pop), size=views, p=weights)
    parts = []
    for start in range(0, views, CHUNK):
        chunk = users[start : start + CHUNK]
        parts.append(
            _simulate_chunk(
                pop, cat, days, chunk, start, rng, hooks, (by_region, by_group), candidates
            )
        )
    return Events(
        *(np.concatenate([getattr(p, f.name) for p in parts]) for f in dataclasses.fields(Events))
    )


def _draw_candidates(
    rng: np.random.Generator,
    u: NDArray[np.int64],
    pop: Population,
    by_region: _GroupIndex,
    by_group: _GroupIndex,
    candidates: int,
) -> NDArray[np.int64]:
    n = len(u)
    local = rng.random((n, candidates)) < LOCAL_CANDIDATE_SHARE
    pick = rng.random((n, candidates))
    r_order, r_start, r_count = by_region
    g_order, g_start, g_count = by_group
    region = pop.home_region[u][:, None]
    group = pop.group_code[u][:, None]
    local &= r_count[region] > 0
    r_pos = r_start[region] + (pick * r_count[region]).astype(np.int64)
    g_pos = g_start[group] + (pick * np.maximum(g_count[group], 1)).astype(np.int64)
    r_pos = np.minimum(r_pos, len(r_order) - 1)
    g_pos = np.minimum(g_pos, len(g_order) - 1)
    return np.where(local, r_order[r_pos], g_order[g_pos])


def _on_market(
    cat: Catalogue, leads: NDArray[np.int64], day: NDArray[np.int64]
) -> NDArray[np.bool_]:
    return (cat.available_from[leads] <= day[:, None]) & (day[:, None] < cat.available_until[leads])


def _simulate_chunk(
    pop: Population,
    cat: Catalogue,
    days: int,
    u: NDArray[np.int64],
    offset: int,
    rng: np.random.Generator,
    hooks: DriftHooks,
    index: tuple[_GroupIndex, _GroupIndex],
    candidates: int,
) -> Events:
    by_region, by_group = index
    n = len(u)
    # Day of each view: uniform over the days the user is signed up.
    first: NDArray[np.int64] = np.clip(pop.first_day[u], 0, days - 1)
    day = first + (rng.random(n) * (days - first)).astype(np.int64)
    second = (rng.random(n) * SECONDS_PER_DAY).astype(np.int64)
    cands = _draw_candidates(rng, u, pop, by_region, by_group, candidates)
    gumbel = rng.gumbel(size=cands.shape)
    redirect_draw = rng.random(n)
    redirect_pick = rng.random(n)
    funnel_draw = rng.random((n, 3))
    delays = rng.exponential(STEP_DELAY, size=(n, 3)).astype(np.int64) + STEP_MIN_DELAY
    has_request = rng.random(n) < REQUEST_SHARE

    open_ = _on_market(cat, cands, day)
    for _ in range(REDRAWS):  # views whose candidates are all off the market try again
        closed = np.flatnonzero(~open_.any(axis=1))
        if not len(closed):
            break
        cands[closed] = _draw_candidates(rng, u[closed], pop, by_region, by_group, candidates)
        open_[closed] = _on_market(cat, cands[closed], day[closed])
    users2d = np.broadcast_to(u[:, None], cands.shape)
    score = match_score(pop, cat, users2d, cands)
    utility = np.where(open_, np.log(score + 0.02) / CHOICE_TEMPERATURE + gumbel, -np.inf)
    best = np.argmax(utility, axis=1)
    lead = cands[np.arange(n), best]
    keep = open_[np.arange(n), best]

    if hooks.redirect_share is not None and hooks.redirect_leads is not None:
        share = hooks.redirect_share[day]
        if hooks.redirect_group is not None:
            share = np.where(pop.group_code[u] == hooks.redirect_group, share, 0.0)
        target = hooks.redirect_leads[(redirect_pick * len(hooks.redirect_leads)).astype(np.int64)]
        moved = (
            (redirect_draw < share)
            & (cat.available_from[target] <= day)
            & (day < cat.available_until[target])
        )
        lead = np.where(moved, target, lead)
        keep |= moved

    m = match_score(pop, cat, u, lead)
    prob = FUNNEL_BASE[None, :] + FUNNEL_SLOPE[None, :] * m[:, None]
    if hooks.funnel_scale is not None:
        prob = prob * hooks.funnel_scale[day]
    reached = np.cumprod(funnel_draw < np.clip(prob, 0.0, 1.0), axis=1).astype(bool)
    times = day * SECONDS_PER_DAY + second
    step_times = times[:, None] + np.cumsum(delays, axis=1)
    horizon = days * SECONDS_PER_DAY
    reached &= step_times < horizon  # later steps happen after the data set ends
    reached = np.cumprod(reached, axis=1).astype(bool)
    reached &= keep[:, None]

    request = np.where(has_request, offset + np.arange(n), -1)
    idx = [np.flatnonzero(keep)] + [np.flatnonzero(reached[:, k]) for k in range(3)]
    return Events(
        user=np.concatenate([u[i] for i in idx]),
        lead=np.concatenate([lead[i] for i in idx]),
        code=np.concatenate([np.full(len(i), c, dtype=np.int8) for c, i in enumerate(idx)]),
        seconds=np.concatenate([times[idx[0]]] + [step_times[idx[k + 1], k] for k in range(3)]),
        request=np.concatenate([request[i] for i in idx]),
    )
