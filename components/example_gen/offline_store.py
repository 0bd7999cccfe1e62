"""The offline store's retrieval: point-in-time-correct features of (entity, time) queries,
by feature view (`aiqleads.features.definitions`).

ExampleGen builds its examples through it, and the serving snapshots the Trainer embeds come
through it too, so training data and the model's snapshot are one retrieval. Each view's
join is an as-of join of ``features_join`` (no data after the query's time); the columns a
view adds to a query are the model-side form of its features (``OFFLINE_COLUMNS``: a share
of the query lead's type or region, not the whole map the online row holds, and days since
the last event instead of its time). `aiqleads.features.materialize` writes the same values
to the online store, and the skew test holds the two to equal.
"""

from __future__ import annotations

import datetime as dt
import pathlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import pandas as pd

from aiqleads.features import definitions as d
from components.example_gen import features_join, raw_tables
from transforms import features as f

QUERY_TS = features_join.QUERY_TS

USER_COLUMNS = features_join.USER_BEHAVIOUR_FEATURES
PAIR_COLUMNS = (f.USER_LEAD_EVENTS, *f.USER_SHARES)
GEO_COLUMNS = features_join.USER_GEO_FEATURES
OFFLINE_COLUMNS: dict[str, tuple[str, ...]] = {
    d.LEAD_ATTRIBUTES_V1.name: features_join.LEAD_FEATURES,
    d.REGION_MARKET_V1.name: features_join.MARKET_FEATURES,
    d.USER_BEHAVIOUR_V1.name: (*USER_COLUMNS, *PAIR_COLUMNS),
    d.USER_GEO_V1.name: GEO_COLUMNS,
}
"""The query columns each view's retrieval adds (what a tf.Example carries of it); the
user x lead columns only for queries with a lead."""
ALL_VIEWS = tuple(OFFLINE_COLUMNS)


def view_versions() -> dict[str, int]:
    """The version of each view this retrieval gives (the latest defined)."""
    return {name: d.REGISTRY.latest(name).version for name in ALL_VIEWS}


@dataclass
class OfflineTables:
    """The sources a retrieval reads: leads, users, the event history and market rows."""

    leads: pd.DataFrame
    users: pd.DataFrame
    history: pd.DataFrame
    market: pd.DataFrame

    @classmethod
    def read(cls, data_root: str | pathlib.Path, last_day: dt.date) -> OfflineTables:
        """Every source row up to the end of ``last_day``."""
        days = raw_tables.spans_up_to(data_root, last_day)
        return cls(
            leads=raw_tables.read_leads(data_root),
            users=raw_tables.read_users(data_root),
            history=raw_tables.read_events(data_root, days),
            market=raw_tables.read_market(data_root, days),
        )


Join = Callable[[pd.DataFrame, "OfflineTables"], pd.DataFrame]


@dataclass(frozen=True)
class ViewJoin:
    """One as-of join: the views it serves, the columns it adds, and whether it needs the
    query's lead (and the lead's columns, from the lead join before it)."""

    views: tuple[str, ...]
    columns: tuple[str, ...]
    needs_lead: bool
    run: Join


# In the order they run: the market join needs the lead's region, the shares its type too.
JOINS = (
    ViewJoin(
        (d.LEAD_ATTRIBUTES_V1.name,),
        features_join.LEAD_FEATURES,
        True,
        lambda q, t: features_join.attach_lead_features(q, t.leads),
    ),
    ViewJoin(
        (d.REGION_MARKET_V1.name,),
        features_join.MARKET_FEATURES,
        True,
        lambda q, t: features_join.attach_market_features(q, t.market),
    ),
    ViewJoin(
        (d.USER_BEHAVIOUR_V1.name, d.USER_GEO_V1.name),
        (*USER_COLUMNS, *GEO_COLUMNS),
        False,
        lambda q, t: features_join.attach_user_features(q, t.history, t.leads, t.users),
    ),
    ViewJoin(
        (d.USER_BEHAVIOUR_V1.name,),
        PAIR_COLUMNS,
        True,
        lambda q, t: features_join.attach_user_shares(
            features_join.attach_pair_history(q, t.history), t.history, t.leads
        ),
    ),
)


class OfflineRetrievalError(ValueError):
    """A retrieval asked for an unknown view, or a join broke its view's columns."""


def historical_features(
    queries: pd.DataFrame, tables: OfflineTables, views: Iterable[str] = ALL_VIEWS
) -> pd.DataFrame:
    """``queries`` (``user_id`` and/or ``lead_id``, ``ts_seconds``) with the columns of
    ``views`` added, as of each query's time; same rows, same order. Queries without a
    ``lead_id`` get the user-only columns; with one, the lead join runs first when a view
    needs the lead's region or type."""
    wanted = set(views)
    unknown = sorted(wanted - set(OFFLINE_COLUMNS))
    if unknown:
        raise OfflineRetrievalError(
            f"no offline retrieval for view(s) {unknown}; known: {list(OFFLINE_COLUMNS)}"
        )
    has_lead = f.LEAD_ID in queries.columns
    runs = [j for j in JOINS if wanted & set(j.views) and (has_lead or not j.needs_lead)]
    if has_lead and any(j.needs_lead for j in runs):
        runs = [j for j in JOINS if j is JOINS[0] or j in runs]
    out = queries
    for join in runs:
        before = set(out.columns)
        out = join.run(out, tables)
        added = set(out.columns) - before
        if added != set(join.columns):
            raise OfflineRetrievalError(
                f"the join of {join.views} added {sorted(added)}, not the columns its views "
                f"define {sorted(join.columns)}: keep OFFLINE_COLUMNS in step with the join"
            )
    return out
