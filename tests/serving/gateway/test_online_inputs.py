"""What the gateway makes of a user's online rows: the model's `recommend_online` inputs,
derived by hand from the rows (no store needed)."""

from __future__ import annotations

import math

from aiqleads.features import definitions as d
from aiqleads.features.online import Row
from serving.gateway.online_features import OnlineInputs, inputs_from_rows
from transforms import features as f

NOW = 1_800_000_000.0
DAY = 86_400.0


def _row(view: d.FeatureView, values: dict, event_ts: float = NOW - 60, **kw) -> Row:
    full = {**view.defaults(), **values}
    missing = tuple(n for n in view.names if n not in values)
    return Row(view, "u1", True, event_ts, full, missing, **kw)


def _unknown(view: d.FeatureView) -> Row:
    return Row(view, "u1", False, None, view.defaults(), view.names)


def _user(inputs: OnlineInputs) -> dict[str, float]:
    return dict(zip(f.ONLINE_USER_FEATURES, inputs.user, strict=True))


def test_a_user_with_rows_gets_counts_recency_shares_history_and_location():
    behaviour = _row(
        d.USER_BEHAVIOUR_V1,
        {
            d.USER_VIEWS: 2,
            d.USER_CLICKS: 0,
            d.USER_INQUIRIES: 3,
            d.USER_PURCHASES: 0,
            d.USER_LAST_EVENT_TS: NOW - DAY / 2,
            d.USER_MEDIAN_PRICE: 450_000.0,
            d.USER_TYPE_SHARES: {"condo": 0.8, "house": 0.2},
            d.USER_REGION_SHARES: {"austin": 1.0},
            d.USER_LEAD_EVENTS: {"l2": 4.0, "l1": 9.0},
        },
    )
    geo = _row(d.USER_GEO_V1, {d.USER_LATITUDE: 30.27, d.USER_LONGITUDE: -97.74})
    inputs = inputs_from_rows(behaviour, geo, NOW, ("l9",), "abc")
    assert _user(inputs) == {
        f.USER_VIEWS: 2.0,
        f.USER_CLICKS: 0.0,
        f.USER_INQUIRIES: 3.0,
        f.USER_PURCHASES: 0.0,
        f.USER_DAYS_SINCE_LAST: 0.5,
        f.USER_MEDIAN_PRICE: 450_000.0,
        f.USER_LATITUDE: 30.27,
        f.USER_LONGITUDE: -97.74,
    }
    assert inputs.share_keys == (
        f"{f.USER_TYPE_SHARE}=condo",
        f"{f.USER_TYPE_SHARE}=house",
        f"{f.USER_REGION_SHARE}=austin",
    )
    assert inputs.share_values == (0.8, 0.2, 1.0)
    assert (inputs.lead_ids, inputs.lead_events) == (("l1", "l2"), (9.0, 4.0))
    assert inputs.excluded == ("l9",) and not inputs.empty
    assert inputs.version_token == f"{NOW - 60:.6f}|{NOW - 60:.6f}|abc"


def test_unknown_stale_and_missing_values_leave_the_snapshots_in_place():
    # Unknown user: every value NaN (the snapshot's), no shares, no history.
    unknown = inputs_from_rows(_unknown(d.USER_BEHAVIOUR_V1), _unknown(d.USER_GEO_V1), NOW, (), "x")
    assert all(math.isnan(v) for v in unknown.user)
    assert unknown.share_keys == unknown.lead_ids == ()
    assert unknown.empty  # the gateway asks `recommend`: the same answer, at less cost
    assert not inputs_from_rows(
        _unknown(d.USER_BEHAVIOUR_V1), _unknown(d.USER_GEO_V1), NOW, ("l9",), "x"
    ).empty  # a lead left out needs `recommend_online`
    # A stale behaviour row counts as none; the fresh geo row still gives the location.
    stale = _row(d.USER_BEHAVIOUR_V1, {d.USER_VIEWS: 5}, event_ts=NOW - 4 * DAY, stale=True)
    geo = _row(d.USER_GEO_V1, {d.USER_LATITUDE: 1.5})  # longitude missing
    inputs = _user(inputs_from_rows(stale, geo, NOW, (), "x"))
    assert inputs[f.USER_LATITUDE] == 1.5
    assert all(math.isnan(v) for k, v in inputs.items() if k != f.USER_LATITUDE)
    # A behaviour row without a last event: no recency (not 0 days, which would be "now").
    fresh = _row(d.USER_BEHAVIOUR_V1, {d.USER_VIEWS: 1})
    assert math.isnan(_user(inputs_from_rows(fresh, geo, NOW, (), "x"))[f.USER_DAYS_SINCE_LAST])


def test_the_token_moves_with_each_row_and_with_the_unavailable_leads():
    behaviour = _row(d.USER_BEHAVIOUR_V1, {d.USER_VIEWS: 1})
    geo = _row(d.USER_GEO_V1, {d.USER_LATITUDE: 1.0, d.USER_LONGITUDE: 2.0})
    base = inputs_from_rows(behaviour, geo, NOW, (), "a").version_token
    later = _row(d.USER_BEHAVIOUR_V1, {d.USER_VIEWS: 2}, event_ts=NOW - 1)
    assert inputs_from_rows(later, geo, NOW, (), "a").version_token != base
    assert inputs_from_rows(behaviour, geo, NOW, (), "b").version_token != base
    assert inputs_from_rows(behaviour, geo, NOW + 5, (), "a").version_token == base


def test_a_model_trained_on_view_versions_the_store_lacks_gets_none_and_is_named(caplog):
    from serving.gateway.metrics import GatewayMetrics
    from serving.gateway.online_features import ModelFeatures, OnlineFeatureReader

    metrics = GatewayMetrics()
    reader = OnlineFeatureReader("redis://127.0.0.1:1/0", metrics, timeout_seconds=0.1)
    current = d.REGISTRY.model_versions()
    ok = reader.usable(ModelFeatures(1, current, frozenset()))
    assert ok is not None and {n: v.version for n, v in ok.items()} == {
        n: current[n] for n in ("user_behaviour", "user_geo")
    }
    future = ModelFeatures(2, {**current, "user_behaviour": 99}, frozenset())
    with caplog.at_level("ERROR"):
        assert reader.usable(future) is None
        assert reader.usable(future) is None
    (record,) = caplog.records  # named once, counted every time
    assert "the model wants user_behaviour:99, the store materializes" in record.getMessage()
    assert reader.usable(None) is None
    text = metrics.render().decode()
    assert 'aiqleads_gateway_online_features_total{outcome="incompatible"} 2.0' in text
    assert 'aiqleads_gateway_online_features_total{outcome="snapshot_model"} 1.0' in text
