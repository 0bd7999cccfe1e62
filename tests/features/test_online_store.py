"""The online store on a real redis-server: typed writes (a wrong type is refused whole),
defaults for unknown entities and missing features, stale rows, the event-time guard, the
update path of lead status and availability, and N / N-1 side by side."""

from __future__ import annotations

import dataclasses
import math

import pytest

from aiqleads.features import definitions as d
from aiqleads.features import keys
from aiqleads.features.online import EntityWrite, OnlineStore, parse_entity
from aiqleads.features.values import FeatureTypeError, parse_text, validate

NOW = 1_800_000_000.0
LEAD_ROW = {
    d.LEAD_LATITUDE: 47.6,
    d.LEAD_LONGITUDE: -122.3,
    d.LEAD_REGION: "seattle-01",
    d.LEAD_PROPERTY_TYPE: "condo",
    d.LEAD_PRICE: 410_000.0,
    d.LEAD_BEDROOMS: 2,
    d.LEAD_STATUS: "active",
}


def _lead(store: OnlineStore, lead_id: str, event_ts: float = NOW, **changes) -> bool:
    row = {**LEAD_ROW, **changes}
    return store.write(EntityWrite(d.LEAD, lead_id, {"lead_attributes": row}, event_ts))


def test_values_are_checked_against_the_schema():
    view = d.LEAD_ATTRIBUTES_V1
    bedrooms, price, status = (view.feature(n) for n in ("bedrooms", "price", "status"))
    assert validate(view, bedrooms, 3) == 3
    assert validate(view, bedrooms, 3.0) == 3
    assert validate(view, price, math.nan) is None
    with pytest.raises(FeatureTypeError, match=r"'bedrooms' is int64; got 2\.5"):
        validate(view, bedrooms, 2.5)
    with pytest.raises(FeatureTypeError, match="expected a number"):
        validate(view, price, "cheap")
    with pytest.raises(FeatureTypeError, match="a boolean is not a feature value"):
        validate(view, price, True)
    with pytest.raises(FeatureTypeError, match="expected one of"):
        validate(view, status, "gone")
    assert parse_text(view, price, "399000") == 399_000.0
    assert parse_text(view, view.feature("listed_ts"), "2027-01-15") == 1_799_971_200.0
    with pytest.raises(FeatureTypeError, match="lead_attributes:1 feature 'price' is float64"):
        parse_text(view, price, "abc")


def test_a_write_round_trips_with_types_and_defaults(online_store):
    assert _lead(online_store, "L1", bathrooms=None)
    row = online_store.read("lead_attributes", "L1", now=NOW)
    assert row.found and not row.stale and row.event_ts == NOW
    assert row.values[d.LEAD_PRICE] == 410_000.0 and row.values[d.LEAD_BEDROOMS] == 2
    assert row.values[d.LEAD_STATUS] == "active"
    # Features not written read as their documented defaults and are listed as missing.
    assert row.values[d.LEAD_BATHROOMS] is None and row.values[d.LEAD_LISTED_TS] is None
    assert set(row.missing) == {d.LEAD_BATHROOMS, d.LEAD_LIVING_AREA, d.LEAD_LISTED_TS}


def test_an_unknown_entity_reads_as_the_defaults(online_store):
    row = online_store.read("user_behaviour", "nobody", now=NOW)
    assert not row.found
    assert row.values == d.USER_BEHAVIOUR_V1.defaults()
    assert row.values[d.USER_VIEWS] == 0 and row.values[d.USER_TYPE_SHARES] == {}


def test_a_write_with_a_wrong_type_is_refused_and_stores_nothing(online_store):
    with pytest.raises(FeatureTypeError, match="'bedrooms' is int64; got 'three'"):
        _lead(online_store, "L2", bedrooms="three")
    with pytest.raises(FeatureTypeError, match=r"has no feature\(s\) \['colour'\]"):
        _lead(online_store, "L2", colour="red")
    assert not online_store.read("lead_attributes", "L2", now=NOW).found
    with pytest.raises(FeatureTypeError, match="written by `aiqleads features materialize`"):
        online_store.put(d.USER, "u1", "user_behaviour", {d.USER_VIEWS: 3})


def test_an_older_write_does_not_replace_a_newer_row(online_store):
    assert _lead(online_store, "L3", event_ts=NOW, price=300_000.0)
    assert not _lead(online_store, "L3", event_ts=NOW - 60, price=999.0)
    assert online_store.read("lead_attributes", "L3", now=NOW).values[d.LEAD_PRICE] == 300_000.0
    assert _lead(online_store, "L3", event_ts=NOW + 1, price=290_000.0)
    assert online_store.read("lead_attributes", "L3", now=NOW).values[d.LEAD_PRICE] == 290_000.0


def test_a_status_change_updates_the_availability_set_and_its_log(online_store):
    for lead in ("L1", "L2", "L3"):
        _lead(online_store, lead)
    assert online_store.unavailable() == (0, set())
    row = online_store.put(d.LEAD, "L2", "lead_attributes", {d.LEAD_STATUS: "sold"})
    assert row.values[d.LEAD_STATUS] == "sold"
    assert row.values[d.LEAD_PRICE] == 410_000.0  # a put merges into the row
    assert online_store.unavailable() == (1, {"L2"})
    online_store.put(d.LEAD, "L2", "lead_attributes", {d.LEAD_PRICE: 400_000.0})  # no change
    online_store.put(d.LEAD, "L3", "lead_attributes", {d.LEAD_STATUS: "pending"})
    online_store.put(d.LEAD, "L2", "lead_attributes", {d.LEAD_STATUS: "active"})
    assert online_store.unavailable() == (3, {"L3"})
    log = online_store.client.zrange(keys.AVAILABILITY_LOG, 0, -1, withscores=True)
    assert log == [(b"L3", 2.0), (b"L2", 3.0)]
    delta = online_store.client.eval(
        keys.AVAILABILITY_DELTA, 3, keys.AVAILABILITY_SEQ, keys.AVAILABILITY_LOG,
        keys.UNAVAILABLE, 1,
    )  # fmt: skip
    assert delta == [3, b"L3", 1, b"L2", 0]


def test_rows_older_than_the_ttl_are_stale(online_store):
    online_store.put(d.REGION, "r1", "region_market", {d.MARKET_DEMAND: 3.0}, event_ts=NOW)
    ttl = d.REGION_MARKET_V1.ttl_seconds
    assert not online_store.read("region_market", "r1", now=NOW + ttl - 1).stale
    assert online_store.read("region_market", "r1", now=NOW + ttl + 1).stale


def test_n_and_n_minus_1_are_written_side_by_side(store_process):
    """A view with a version 2 that drops a feature: every write lands in both versions,
    each with its own schema; the older view keeps serving models trained on it."""
    v2 = dataclasses.replace(
        d.REGION_MARKET_V1, version=2, features=d.REGION_MARKET_V1.features[1:]
    )
    store = OnlineStore(store_process.url, registry=d.Registry((d.REGION_MARKET_V1, v2)))
    try:
        store.put(d.REGION, "r1", "region_market", {d.MARKET_MEDIAN_PRICE: 5e5}, event_ts=NOW)
        store.put(d.REGION, "r1", "region_market", {d.MARKET_DEMAND: 7.0}, event_ts=NOW + 1)
        old = store.read("region_market", "r1", version=1, now=NOW)
        new = store.read("region_market", "r1", version=2, now=NOW)
        assert old.values[d.MARKET_DEMAND] == 7.0 and old.values[d.MARKET_MEDIAN_PRICE] == 5e5
        assert d.MARKET_DEMAND not in new.values and new.values[d.MARKET_MEDIAN_PRICE] == 5e5
        assert [r.view.ref for r in store.read_entity(d.REGION, "r1", now=NOW)] == [
            "region_market:1",
            "region_market:2",
        ]
    finally:
        store.close()


def test_entities_are_named_type_colon_id():
    assert parse_entity("user:u000001") == (d.USER, "u000001")
    assert parse_entity("lead:L:1") == (d.LEAD, "L:1")
    with pytest.raises(
        ValueError, match=r"<entity>:<id> with entity one of \['lead', 'region', 'user'\]"
    ):
        parse_entity("house:1")
