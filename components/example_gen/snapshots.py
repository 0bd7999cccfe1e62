"""Serving snapshots: the catalogue and the users as of a day, computed like training data.

The Trainer's ``recommend`` signature embeds the active catalogue and the user aggregates;
both come from here, through the offline store's retrieval ExampleGen uses
(``offline_store``, the as-of joins of ``features_join``), so a feature means the same at
training and serving time.

The history up to the day (events and market rows) is a `DayHistory`: every span's files,
or the history state ExampleGen's Beam run left as of that day (`history_state`: one row per
user, lead and event type), which gives the same tables without reading every event.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import pathlib

import numpy as np
import pandas as pd

from aiqleads import contracts as c
from aiqleads.features import definitions as d
from components.example_gen import features_join, history_state, offline_store, raw_tables
from transforms import features as f

log = logging.getLogger(__name__)

_CATALOGUE_VIEWS = (d.LEAD_ATTRIBUTES_V1.name, d.REGION_MARKET_V1.name)
_USER_VIEWS = (d.USER_BEHAVIOUR_V1.name, d.USER_GEO_V1.name)
_NO_ROWS = pd.DataFrame()  # a source a retrieval does not read


def _as_date(as_of: dt.date | str) -> dt.date:
    if isinstance(as_of, dt.datetime):
        return as_of.date()
    if isinstance(as_of, dt.date):
        return as_of
    return dt.date.fromisoformat(str(as_of))


@dataclasses.dataclass(frozen=True)
class DayHistory:
    """The events (or carried rows) and market rows up to the end of ``day``."""

    day: dt.date
    events: pd.DataFrame
    market: pd.DataFrame
    state: str = ""  # the history state read, "" when every span was

    @classmethod
    def read(
        cls, data_root: str | pathlib.Path, as_of: dt.date | str, state_root: str = ""
    ) -> DayHistory:
        """From the history state as of ``as_of`` under ``state_root`` when there is a usable
        one, else from every span up to ``as_of``."""
        day = _as_date(as_of)
        state = history_state.at(state_root, str(data_root), day) if state_root else None
        if state is not None:
            events = history_state.read_all_rows(state)
            return cls(day, events, history_state.read_market(state), state.path)
        days = raw_tables.spans_up_to(data_root, day)
        events = raw_tables.read_events(data_root, days)
        events = events[events[features_join.QUERY_TS] < raw_tables.day_end_seconds(day)]
        return cls(day, events, raw_tables.read_market(data_root, days))


def _history(
    data_root: str | pathlib.Path, as_of: dt.date | str, history: DayHistory | None
) -> DayHistory:
    day = _as_date(as_of)
    if history is None:
        return DayHistory.read(data_root, day)
    if history.day != day:
        raise ValueError(f"a history as of {history.day} for a snapshot as of {day}")
    return history


def load_catalogue(
    data_root: str | pathlib.Path, as_of: dt.date | str, history: DayHistory | None = None
) -> pd.DataFrame:
    """The leads active at the end of ``as_of``, one row per ``lead_id``.

    Columns: ``lead_id``, the lead-side features (``features_join.LEAD_FEATURES``) and the
    market-side features of the lead's region (latest market row on or before ``as_of``).
    Active means status ``active`` and listed on or before ``as_of``.
    """
    day = _as_date(as_of)
    leads = raw_tables.read_leads(data_root)
    listed = leads[c.LISTED_DATE] <= pd.Timestamp(day)
    active = leads[(leads[c.STATUS] == "active") & listed]
    queries = pd.DataFrame({c.LEAD_ID: active[c.LEAD_ID].to_numpy()})
    # Lead age and market rows are taken at the last second of the day.
    queries[features_join.QUERY_TS] = raw_tables.day_end_seconds(day) - 1
    market = _history(data_root, day, history).market
    tables = offline_store.OfflineTables(leads, users=_NO_ROWS, history=_NO_ROWS, market=market)
    out = offline_store.historical_features(queries, tables, _CATALOGUE_VIEWS)
    out = out.drop(columns=[features_join.QUERY_TS])
    columns = [f.LEAD_ID, *features_join.LEAD_FEATURES, *features_join.MARKET_FEATURES]
    return out[columns].sort_values(f.LEAD_ID, kind="stable").reset_index(drop=True)


def load_user_snapshot(
    data_root: str | pathlib.Path, as_of: dt.date | str, history: DayHistory | None = None
) -> pd.DataFrame:
    """User-side features of every known user as of the end of ``as_of``, keyed by ``user_id``.

    Aggregates cover all events of the spans up to and including ``as_of``.
    """
    day = _as_date(as_of)
    users = raw_tables.read_users(data_root)
    users = users[users[c.SIGNUP_DATE] <= pd.Timestamp(day)]
    leads = raw_tables.read_leads(data_root)
    events = _history(data_root, day, history).events
    queries = pd.DataFrame({c.USER_ID: users[c.USER_ID].to_numpy()})
    queries[features_join.QUERY_TS] = np.int64(raw_tables.day_end_seconds(day))
    tables = offline_store.OfflineTables(leads, users, events, market=_NO_ROWS)
    out = offline_store.historical_features(queries, tables, _USER_VIEWS)
    columns = [f.USER_ID, *features_join.USER_FEATURES]
    return out[columns].sort_values(f.USER_ID, kind="stable").reset_index(drop=True)


def _weighted_history(
    data_root: str | pathlib.Path, day: dt.date, history: DayHistory | None
) -> tuple[pd.DataFrame, pd.Series]:
    """Events up to the end of ``day`` and each one's weight (view 1 ... purchase 8)."""
    events = _history(data_root, day, history).events
    return events, pd.Series(features_join.pair_event_weights(events), index=events.index)


def load_pair_history(
    data_root: str | pathlib.Path, as_of: dt.date | str, history: DayHistory | None = None
) -> pd.DataFrame:
    """``user_lead_events`` of every (user, lead) pair with events up to the end of ``as_of``.

    Columns ``user_id``, ``lead_id``, ``user_lead_events`` (> 0); the value ExampleGen's
    ``attach_pair_history`` gives a query at the end of that day.
    """
    events, weights = _weighted_history(data_root, _as_date(as_of), history)
    pairs = weights.groupby([events[c.USER_ID], events[c.LEAD_ID]], sort=True).sum()
    pairs = pairs[pairs > 0].rename(f.USER_LEAD_EVENTS).reset_index()
    return pairs.rename(columns={c.USER_ID: f.USER_ID, c.LEAD_ID: f.LEAD_ID})


def load_user_shares(
    data_root: str | pathlib.Path, as_of: dt.date | str, history: DayHistory | None = None
) -> dict[str, pd.DataFrame]:
    """The user shares (`features.USER_SHARES`) of every user with events up to the end of
    ``as_of``: share feature -> a frame with columns ``user_id``, the lead column it groups
    by (``property_type``, ``region``) and the share (> 0), the value ExampleGen's
    ``attach_user_shares`` gives a query at the end of that day (groups missing here have
    share 0)."""
    history_events, weights = _weighted_history(data_root, _as_date(as_of), history)
    leads = raw_tables.read_leads(data_root).set_index(c.LEAD_ID)
    total = weights.groupby(history_events[c.USER_ID]).sum()
    out = {}
    for share, column in f.USER_SHARES.items():
        groups = (
            history_events[c.LEAD_ID]
            .map(leads[features_join.LEAD_GROUP_COLUMNS[column]])
            .rename(column)
        )
        per_group = weights.groupby([history_events[c.USER_ID].rename(f.USER_ID), groups]).sum()
        value = per_group / total.reindex(per_group.index.get_level_values(0)).to_numpy()
        out[share] = value[per_group > 0].rename(share).reset_index()
    return out
