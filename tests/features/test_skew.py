"""Training/serving skew: for the same entity and time, the online store's features equal
what ExampleGen's as-of joins give (`components/example_gen/features_join.py`), both after a
materialization and after streaming the next day's events through the event log."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest

from aiqleads import contracts as c
from aiqleads.features import definitions as d
from aiqleads.features import sources
from aiqleads.features.materialize import materialize
from aiqleads.features.user_state import days_since


def offline_pairs(data, day: dt.date) -> pd.DataFrame:
    """ExampleGen's joins for every user x every lead, queried at the end of ``day``."""
    from components.example_gen import features_join

    users = sources.read_users(data)
    users = users[users[c.SIGNUP_DATE] <= pd.Timestamp(day)]
    leads = sources.read_leads(data)
    history = sources.read_events(data, sources.spans_up_to(data, day))
    queries = pd.MultiIndex.from_product(
        [users[c.USER_ID].astype(str), leads[c.LEAD_ID].astype(str)],
        names=[c.USER_ID, c.LEAD_ID],
    ).to_frame(index=False)
    queries[features_join.QUERY_TS] = np.int64(sources.day_end_seconds(day))
    out = features_join.attach_lead_features(queries, leads)
    out = features_join.attach_user_features(out, history, leads, users)
    out = features_join.attach_pair_history(out, history)
    return features_join.attach_user_shares(out, history, leads)


def _same(online, offline, what):
    if offline is None or (isinstance(offline, float) and math.isnan(offline)):
        assert online is None, what
    else:
        assert online == pytest.approx(float(offline), rel=1e-9, abs=1e-9), what


def assert_users_match(store, data, day: dt.date) -> int:
    """Every user's online values, read at the end of ``day``, against the offline joins;
    returns the number of (user, lead) pairs compared."""
    at = float(sources.day_end_seconds(day))
    offline = offline_pairs(data, day)
    compared = 0
    for user_id, rows in offline.groupby(c.USER_ID, sort=True):
        behaviour = store.read("user_behaviour", user_id, now=at)
        geo = store.read("user_geo", user_id, now=at)
        assert behaviour.found and geo.found, user_id
        first = rows.iloc[0]
        b, g = behaviour.values, geo.values
        for name in d.COUNT_FEATURES.values():
            assert b[name] == int(first[name]), (user_id, name)
        _same(days_since(b[d.USER_LAST_EVENT_TS], at), first["user_days_since_last_event"], user_id)
        _same(b[d.USER_MEDIAN_PRICE], first[d.USER_MEDIAN_PRICE], user_id)
        _same(g[d.USER_LATITUDE], first[d.USER_LATITUDE], user_id)
        _same(g[d.USER_LONGITUDE], first[d.USER_LONGITUDE], user_id)
        lead_events, type_shares = b[d.USER_LEAD_EVENTS], b[d.USER_TYPE_SHARES]
        region_shares = b[d.USER_REGION_SHARES]
        for row in rows.itertuples(index=False):
            what = (user_id, row.lead_id)
            assert lead_events.get(row.lead_id, 0.0) == pytest.approx(row.user_lead_events), what
            if math.isnan(row.user_type_share):  # no weighted history yet
                assert not type_shares and not region_shares, what
                continue
            assert type_shares.get(row.property_type, 0.0) == pytest.approx(
                row.user_type_share, rel=1e-9
            ), what
            assert region_shares.get(row.region, 0.0) == pytest.approx(
                row.user_region_share, rel=1e-9
            ), what
            compared += 1
    return compared


def test_materialized_features_equal_the_offline_joins(online_store, small_world):
    from components.example_gen import snapshots

    data, days = small_world
    day = days[-2]
    summary = materialize(online_store, data, day)
    assert summary.as_of == day and summary.users and summary.leads and summary.regions
    assert assert_users_match(online_store, data, day) > 100
    # Leads and their regions' markets against the serving catalogue's joins (the same
    # `attach_lead_features` / `attach_market_features` at the last second of the day).
    at = float(sources.day_end_seconds(day))
    catalogue = snapshots.load_catalogue(data, day)
    for row in catalogue.itertuples(index=False):
        lead = online_store.read("lead_attributes", row.lead_id, now=at).values
        market = online_store.read("region_market", lead[d.LEAD_REGION], now=at).values
        assert lead[d.LEAD_STATUS] == "active"
        assert (lead[d.LEAD_REGION], lead[d.LEAD_PROPERTY_TYPE]) == (row.region, row.property_type)
        for name in ("lead_latitude", "lead_longitude", "price", "bathrooms", "living_area"):
            _same(lead[name], getattr(row, name), (row.lead_id, name))
        _same(None if lead["bedrooms"] is None else float(lead["bedrooms"]), row.bedrooms, row)
        age = max((at - 1 - lead[d.LEAD_LISTED_TS]) / 86_400, 0.0)
        assert age == pytest.approx(row.lead_age_days), row.lead_id
        for name in (
            d.MARKET_DEMAND,
            d.MARKET_MEDIAN_PRICE,
            d.MARKET_INVENTORY,
            d.MARKET_PRICE_TREND,
        ):
            _same(market[name], getattr(row, name), (row.lead_id, name))


def test_streamed_features_equal_the_offline_joins(online_store, event_log, small_world):
    """Materialize as of day D-1, then send day D's events through the event log as
    feedback and let the streaming updater fold them: the store equals the offline joins
    at the end of day D."""
    from aiqleads.events.records import Feedback
    from aiqleads.features.streaming import StreamUpdater

    data, days = small_world
    materialize(online_store, data, days[-2])
    events = sources.read_events(data, [days[-1]]).sort_values(sources.TS_SECONDS, kind="stable")
    for i, event in enumerate(events.itertuples(index=False)):
        event_log.append_feedback(
            Feedback(
                feedback_id=f"f{i}",
                request_id=f"r{i}",
                ts=float(event.ts_seconds),
                user_id=event.user_id,
                lead_id=event.lead_id,
                event_type=event.event_type,
                model_version=1,
                variant="stable",
                issued_at=float(event.ts_seconds),
            )
        )
    updater = StreamUpdater(event_log, online_store, batch=100, block_ms=50)
    try:
        while updater.run_once():
            pass
        assert updater.stats.applied == len(events) and updater.stats.skipped == 0
        assert assert_users_match(online_store, data, days[-1]) > 100
        # Redelivered entries (a crash before the acknowledgement) count once.
        before = online_store.read_state(events.iloc[0].user_id)[0].dumps()
        from aiqleads.events.records import FEEDBACK_STREAM

        entries = list(event_log.range(FEEDBACK_STREAM))
        updater.apply([(e.entry_id, Feedback.decode(e.raw)) for e in entries[:20]])
        assert online_store.read_state(events.iloc[0].user_id)[0].dumps() == before
        assert updater.stats.skipped == 20
    finally:
        updater.close()
