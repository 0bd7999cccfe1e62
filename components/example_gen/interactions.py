"""Labelled interactions for a rolling window of spans: labels, negatives, time split.

Decisions (docs/pipeline.md):
- One positive example per (user, lead, UTC day). Its label is the strongest event of that
  day (purchase 4 > inquiry 3 > click 2 > view 1) and its time is the *first* event of that
  day, so the features never include the same-day events that led up to the label.
- Negatives (label 0) per positive, at the positive's time: a share of "hard" negatives from
  the positive lead's region (uniform) and the rest drawn by popularity (event count in the
  window, plus one, to a power; power 0 and no hard share, the default, is uniform). A
  candidate is dropped when the user engaged with it anywhere in the window or when it was
  listed after the event date, and repeats are dropped; there is no resampling, so a
  positive can get fewer than the configured count. Negatives come from the whole catalogue
  listed by then, whatever the lead's current status (status has no history). The draws of
  a positive are a hash of (seed, user, time, lead), not a shared random stream, so the
  examples do not depend on how the users are split across processes (`beam_examples`).
- Split by time: examples of the last ``eval_days`` days of the window are ``eval``.
- Ranking protocol of the eval split (``eval_negatives`` > 0): instead of the training
  sampler's negatives, each user with an eval positive gets ``eval_negatives`` leads drawn
  uniformly without replacement from the leads listed by then that the user did not engage
  with in the window, spread evenly over the times of the user's eval positives. The
  Evaluator ranks each user's positives among them (sampled negatives as in the NCF protocol,
  docs/pipeline.md), which separates a good ranking from a mediocre one where
  four negatives per positive do not. Seeded per (seed, user).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import pathlib
import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from aiqleads import contracts as c
from aiqleads import settings_io
from aiqleads.errors import DataError
from components.example_gen import features_join, offline_store, raw_tables
from transforms import features as f

TS = raw_tables.TS_SECONDS
SPLIT = "split"
TRAIN = "train"
EVAL = "eval"
SPLITS = (TRAIN, EVAL)
EVAL_NEGATIVES_STREAM = 1  # the eval negatives' random stream, apart from the training sampler's
_LEVEL = {name: f.ENGAGEMENT_LEVELS[name] for name in c.EVENT_TYPES}


@dataclasses.dataclass(frozen=True)
class SamplingConfig:
    """How many negatives per positive, the hard (same-region) share, how the rest follow
    popularity, and the seed.

    The default draws uniformly from the catalogue: same-region and popularity-weighted
    negatives look like the positives in exactly what most decides engagement here (the
    user's home region), so the classifier learnt little of it and the ranking lost
    (docs/model.md, "Negative sampling").
    """

    negatives_per_positive: int = 4
    hard_fraction: float = 0.0
    seed: int = 0
    popularity_exponent: float = 0.0  # easy negatives ~ (events + 1) ** exponent; 0 = uniform

    def __post_init__(self) -> None:
        if not 0 <= self.negatives_per_positive <= 100:
            raise DataError(
                f"negatives_per_positive must be in 0..100, got {self.negatives_per_positive}"
            )
        if not 0.0 <= self.hard_fraction <= 1.0:
            raise DataError(f"hard_fraction must be in [0, 1], got {self.hard_fraction}")
        if not 0.0 <= self.popularity_exponent <= 2.0:
            raise DataError(
                f"popularity_exponent must be in [0, 2], got {self.popularity_exponent}"
            )

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], seed: int = 0) -> SamplingConfig:
        """A config from ``key: value`` settings other than the seed (numbers or numeric
        strings: the Trainer's ``custom_config``, a command line); unknown keys and bad
        values are DataErrors naming them."""
        known = sorted(fl.name for fl in dataclasses.fields(cls) if fl.name != "seed")
        unknown = sorted(set(settings) - set(known))
        if unknown:
            raise DataError(f"unknown sampling settings {unknown}; known: {known}")
        try:
            values = {
                key: settings_io.as_number(value, getattr(cls, key), f"sampling {key}")
                for key, value in settings.items()
            }
        except ValueError as e:
            raise DataError(str(e)) from None
        return cls(seed=seed, **values)


def label_interactions(events: pd.DataFrame) -> pd.DataFrame:
    """Collapse events into one row per (user, lead, day): strongest label, first time."""
    if events.empty:
        return pd.DataFrame(
            {c.USER_ID: [], c.LEAD_ID: [], TS: np.array([], np.int64), f.ENGAGEMENT: []}
        )
    frame = pd.DataFrame(
        {
            c.USER_ID: events[c.USER_ID].to_numpy(),
            c.LEAD_ID: events[c.LEAD_ID].to_numpy(),
            TS: events[TS].to_numpy(np.int64),
            f.ENGAGEMENT: events[c.EVENT_TYPE].map(_LEVEL).to_numpy(),
        }
    )
    if frame[f.ENGAGEMENT].isna().any():
        bad = sorted(set(events[c.EVENT_TYPE][frame[f.ENGAGEMENT].isna()]))
        raise DataError(f"unknown event types {bad}; expected one of {list(c.EVENT_TYPES)}")
    frame["_day"] = frame[TS] // raw_tables.DAY_SECONDS
    grouped = frame.groupby([c.USER_ID, c.LEAD_ID, "_day"], sort=True)
    out = grouped.agg(**{TS: (TS, "min"), f.ENGAGEMENT: (f.ENGAGEMENT, "max")}).reset_index()
    out[f.ENGAGEMENT] = out[f.ENGAGEMENT].astype(np.int64)
    return out.drop(columns=["_day"]).sort_values([TS, c.USER_ID, c.LEAD_ID], kind="stable")


_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
HARD_STREAM = 2  # the hard negatives' draws, apart from the popularity draws (stream 0)


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finalizer: a bijection of uint64 that scatters every input bit."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * _MIX1
        x = (x ^ (x >> np.uint64(27))) * _MIX2
    return x ^ (x >> np.uint64(31))


def stable_ids(values: np.ndarray) -> np.ndarray:
    """CRC-32 of each id's UTF-8 bytes as uint64: the same in every process and runner
    (Python's ``hash`` of a string is salted per process)."""
    return np.fromiter(
        (zlib.crc32(str(v).encode()) for v in values), dtype=np.uint64, count=len(values)
    )


def keyed_uniforms(seed: int, stream: int, *keys: np.ndarray, count: int) -> np.ndarray:
    """``count`` uniforms in [0, 1) per row, a pure function of (seed, stream, keys, draw):
    rows with equal keys get equal draws whichever process computes them."""
    with np.errstate(over="ignore"):
        state = _mix(np.full(len(keys[0]), np.uint64(seed * 1_000_003 + stream), np.uint64))
        for key in keys:
            state = _mix(state ^ (np.asarray(key, np.uint64) + _GOLDEN))
        draws = state[:, None] + (np.arange(1, count + 1, dtype=np.uint64) * _GOLDEN)[None, :]
        bits = _mix(draws) >> np.uint64(11)
    return bits.astype(np.float64) / float(1 << 53)


def sample_negatives(
    positives: pd.DataFrame,
    leads: pd.DataFrame,
    popularity: pd.Series,
    sampling: SamplingConfig,
) -> pd.DataFrame:
    """Negatives for ``positives`` (user_id, lead_id, ts): hard same-region + popularity.

    Each positive's draws are keyed by (seed, user, time, lead), so a positive gets the same
    negatives whichever other positives are sampled with it."""
    n_neg = sampling.negatives_per_positive
    empty = pd.DataFrame(
        {c.USER_ID: [], c.LEAD_ID: [], TS: np.array([], np.int64), f.ENGAGEMENT: []}
    )
    if n_neg == 0 or positives.empty or leads.empty:
        return empty
    lead_ids = leads[c.LEAD_ID].to_numpy()
    region_of = dict(zip(leads[c.LEAD_ID], leads[c.REGION], strict=True))
    n_hard = int(round(n_neg * sampling.hard_fraction))
    n_pop = n_neg - n_hard

    pos_user = positives[c.USER_ID].to_numpy()
    pos_ts = positives[TS].to_numpy(np.int64)
    keys = (
        stable_ids(pos_user),
        pos_ts.astype(np.uint64),
        stable_ids(positives[c.LEAD_ID].to_numpy()),
    )
    picks_user, picks_ts, picks_lead = [], [], []
    if n_pop:
        weights = popularity.reindex(lead_ids).fillna(0).to_numpy(float) + 1.0
        weights = weights**sampling.popularity_exponent
        cdf = np.cumsum(weights / weights.sum())
        u = keyed_uniforms(sampling.seed, 0, *keys, count=n_pop)
        chosen = np.minimum(np.searchsorted(cdf, u, side="right"), len(lead_ids) - 1)
        picks_user.append(np.repeat(pos_user, n_pop))
        picks_ts.append(np.repeat(pos_ts, n_pop))
        picks_lead.append(lead_ids[chosen.ravel()])
    if n_hard:
        pos_region = positives[c.LEAD_ID].map(region_of).to_numpy()
        by_region = {
            region: group.to_numpy()
            for region, group in leads.groupby(c.REGION, sort=True)[c.LEAD_ID]
        }
        u = keyed_uniforms(sampling.seed, HARD_STREAM, *keys, count=n_hard)
        hard = np.empty((len(positives), n_hard), dtype=object)
        for region, members in by_region.items():
            rows = np.flatnonzero(pos_region == region)
            if rows.size:
                hard[rows] = members[(u[rows] * len(members)).astype(np.int64)]
        keep = hard.ravel() != None  # noqa: E711 (object array: positives of unknown leads)
        picks_user.append(np.repeat(pos_user, n_hard)[keep])
        picks_ts.append(np.repeat(pos_ts, n_hard)[keep])
        picks_lead.append(hard.ravel()[keep])
    negatives = pd.DataFrame(
        {
            c.USER_ID: np.concatenate(picks_user),
            c.LEAD_ID: np.concatenate(picks_lead),
            TS: np.concatenate(picks_ts).astype(np.int64),
        }
    )
    # Drop leads the user engaged with in the window and leads not yet listed.
    engaged = positives[[c.USER_ID, c.LEAD_ID]].drop_duplicates().assign(_engaged=True)
    negatives = negatives.merge(engaged, on=[c.USER_ID, c.LEAD_ID], how="left")
    listed = leads.set_index(c.LEAD_ID)[c.LISTED_DATE]
    listed_s = raw_tables.to_seconds(listed.reindex(negatives[c.LEAD_ID]))
    day_start = negatives[TS].to_numpy() // raw_tables.DAY_SECONDS * raw_tables.DAY_SECONDS
    ok = negatives["_engaged"].isna().to_numpy() & (listed_s <= day_start)
    negatives = negatives[ok].drop(columns=["_engaged"]).drop_duplicates()
    negatives[f.ENGAGEMENT] = np.int64(0)
    return negatives.reset_index(drop=True)


def sample_eval_negatives(
    eval_positives: pd.DataFrame,
    window_positives: pd.DataFrame,
    leads: pd.DataFrame,
    count: int,
    seed: int,
) -> pd.DataFrame:
    """``count`` uniform negatives per user of ``eval_positives`` (user_id, lead_id, ts).

    Drawn without replacement from the leads listed on or before the day of the user's first
    eval positive that the user engaged with nowhere in ``window_positives``; fewer when
    fewer are left. Their times cycle over the user's eval positives' times (sorted), so
    every positive's as-of state of the user carries its share of the negatives. Seeded per
    (seed, user): a user's draws do not depend on the other users.
    """
    empty = pd.DataFrame(
        {c.USER_ID: [], c.LEAD_ID: [], TS: np.array([], np.int64), f.ENGAGEMENT: []}
    )
    if count <= 0 or eval_positives.empty or leads.empty:
        return empty
    lead_ids = leads[c.LEAD_ID].to_numpy()
    listed_s = raw_tables.to_seconds(leads[c.LISTED_DATE])
    engaged = window_positives.groupby(c.USER_ID, sort=False)[c.LEAD_ID].agg(set)
    users, leads_out, times = [], [], []
    for user, group in eval_positives.groupby(c.USER_ID, sort=True):
        ts = np.sort(group[TS].to_numpy(np.int64))
        day_start = ts[0] // raw_tables.DAY_SECONDS * raw_tables.DAY_SECONDS
        taken = engaged.get(user, set())
        pool = np.flatnonzero(
            (listed_s <= day_start) & ~np.isin(lead_ids, np.asarray(list(taken), dtype=object))
        )
        n = min(count, pool.size)
        if n == 0:
            continue
        rng = np.random.default_rng([seed, EVAL_NEGATIVES_STREAM, zlib.crc32(str(user).encode())])
        chosen = rng.choice(pool, size=n, replace=False)
        users.append(np.full(n, user, dtype=object))
        leads_out.append(lead_ids[chosen])
        times.append(np.resize(ts, n))
    if not users:
        return empty
    negatives = pd.DataFrame(
        {
            c.USER_ID: np.concatenate(users),
            c.LEAD_ID: np.concatenate(leads_out),
            TS: np.concatenate(times).astype(np.int64),
        }
    )
    negatives[f.ENGAGEMENT] = np.int64(0)
    return negatives


def split_by_time(ts_seconds: np.ndarray, last_day: dt.date, eval_days: int) -> np.ndarray:
    """``eval`` for the last ``eval_days`` UTC days up to ``last_day``, ``train`` before."""
    first_eval_day = last_day - dt.timedelta(days=eval_days - 1)
    cut = raw_tables.day_end_seconds(first_eval_day) - raw_tables.DAY_SECONDS
    return np.where(np.asarray(ts_seconds) >= cut, EVAL, TRAIN)


def check_window(window: list[dt.date], eval_days: int, data_root: object) -> None:
    """Raise ``DataError`` unless the window has spans and both splits get some."""
    if not window:
        raise DataError(f"no spans to read under {data_root}/spans")
    if not 1 <= eval_days < len(window):
        raise DataError(
            f"eval_days={eval_days} must be at least 1 and less than the window "
            f"({len(window)} spans), so that both splits have data"
        )


def unknown_leads_message(unknown: set[str]) -> str:
    """The error for events whose lead is not in leads.csv."""
    return f"events refer to leads missing from leads.csv: {sorted(unknown)[:5]}"


def window_start_seconds(window: list[dt.date]) -> int:
    """The first second of the window's first day."""
    return raw_tables.day_end_seconds(window[0]) - raw_tables.DAY_SECONDS


@dataclasses.dataclass(frozen=True)
class ExampleSpec:
    """What decides the examples besides the data: the window's last day, the eval days,
    the training sampler and the eval split's ranking negatives."""

    last_day: dt.date
    window_start: int  # seconds: events from here on are the window's
    eval_days: int
    sampling: SamplingConfig
    eval_negatives: int = 0


def examples_for(
    history: pd.DataFrame,
    tables: offline_store.OfflineTables,
    popularity: pd.Series,
    spec: ExampleSpec,
) -> pd.DataFrame:
    """The examples of the users of ``history`` (every event of theirs up to the window's
    end), with raw features, label and split, sorted by (time, user, lead).

    Every step is per user or per row (labels, negatives keyed by user and time, as-of
    joins), so the examples of a set of users do not depend on the other users: the pandas
    run (`build_examples`, every user at once) and the Beam run (`beam_examples`, users
    sharded) give the same rows. ``tables`` holds those users' history and rows, the
    leads and the market; ``popularity`` counts the window's events per lead over all
    users."""
    window_events = history[history[TS] >= spec.window_start]
    positives = label_interactions(window_events)
    negatives = sample_negatives(positives, tables.leads, popularity, spec.sampling)
    if spec.eval_negatives > 0:
        # Drawn for every positive above, so the training negatives do not depend on it.
        in_eval = split_by_time(negatives[TS].to_numpy(), spec.last_day, spec.eval_days) == EVAL
        eval_positives = positives[
            split_by_time(positives[TS].to_numpy(), spec.last_day, spec.eval_days) == EVAL
        ]
        ranking = sample_eval_negatives(
            eval_positives, positives, tables.leads, spec.eval_negatives, spec.sampling.seed
        )
        negatives = pd.concat([negatives[~in_eval], ranking], ignore_index=True)
    examples = pd.concat([positives, negatives], ignore_index=True)
    examples = examples.sort_values([TS, c.USER_ID, c.LEAD_ID], kind="stable")
    examples = examples.reset_index(drop=True)
    # The offline store's retrieval of every view, as of each example's time.
    examples = offline_store.historical_features(examples, tables)
    examples[f.PRICE_BAND] = features_join.price_band(
        examples[f.PRICE], examples[f.MARKET_MEDIAN_PRICE]
    )
    examples[f.EVENT_TIMESTAMP] = examples[TS].astype(np.int64)
    examples[SPLIT] = split_by_time(examples[TS].to_numpy(), spec.last_day, spec.eval_days)
    return examples.drop(columns=[TS])


def build_examples(
    data_root: str | pathlib.Path,
    window: list[dt.date],
    eval_days: int,
    sampling: SamplingConfig,
    eval_negatives: int = 0,
) -> pd.DataFrame:
    """All examples of ``window`` (sorted span days) with raw features, label and split,
    computed in this process with pandas (the reference of `beam_examples`).

    User aggregates use every span up to the window's last day (history before the window
    counts); examples come from the window's spans only. With ``eval_negatives`` > 0 the eval
    split's negatives follow the ranking protocol (`sample_eval_negatives`) instead of the
    training sampler; the training split is the same either way.
    """
    check_window(window, eval_days, data_root)
    last_day = window[-1]
    spec = ExampleSpec(last_day, window_start_seconds(window), eval_days, sampling, eval_negatives)
    tables = offline_store.OfflineTables.read(data_root, last_day)
    window_events = tables.history[tables.history[TS] >= spec.window_start]
    unknown = set(window_events[c.LEAD_ID]) - set(tables.leads[c.LEAD_ID])
    if unknown:
        raise DataError(unknown_leads_message(unknown))
    popularity = window_events.groupby(c.LEAD_ID).size()
    return examples_for(tables.history, tables, popularity, spec)
