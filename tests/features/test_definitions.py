"""The feature definitions: the golden compatibility check, the versioning rules on
hand-made changes, and the names the model side shares."""

from __future__ import annotations

import dataclasses
import pathlib

import pytest

from aiqleads.features import compat
from aiqleads.features import definitions as d

GOLDEN = pathlib.Path(__file__).resolve().parent / "golden" / "feature_views.json"


def _golden():
    return compat.loads(GOLDEN.read_text())


def test_no_view_changed_incompatibly_without_a_new_version():
    problems = compat.check(_golden(), d.VIEWS)
    assert not problems, "\n".join(problems)


def test_the_golden_records_the_current_definitions():
    want = compat.dumps(compat.merge(_golden(), d.VIEWS))
    assert GOLDEN.read_text() == want, (
        "the feature view definitions changed compatibly: record them with "
        "`.venv/bin/python tests/features/regenerate_golden.py` and commit the golden"
    )


def _with_features(view, features, version=None):
    return dataclasses.replace(
        view, features=tuple(features), version=view.version if version is None else version
    )


def test_removing_a_feature_needs_a_new_version():
    golden = [compat.describe(d.USER_GEO_V1)]
    trimmed = _with_features(d.USER_GEO_V1, d.USER_GEO_V1.features[:2])
    (problem,) = compat.check(golden, [trimmed])
    assert "'user_location_source' of user_geo:1 was removed" in problem
    assert "define user_geo:2" in problem
    # The same change as version 2, with version 1 kept, is fine.
    assert compat.check(golden, [d.USER_GEO_V1, _with_features(trimmed, trimmed.features, 2)]) == []


def test_retyping_or_changing_a_default_needs_a_new_version():
    golden = [compat.describe(d.REGION_MARKET_V1)]
    first, *rest = d.REGION_MARKET_V1.features
    retyped = _with_features(
        d.REGION_MARKET_V1, [dataclasses.replace(first, dtype=d.ValueType.STRING), *rest]
    )
    (problem,) = compat.check(golden, [retyped])
    assert "retyped from float64 to string" in problem
    defaulted = _with_features(d.REGION_MARKET_V1, [dataclasses.replace(first, default=0.0), *rest])
    (problem,) = compat.check(golden, [defaulted])
    assert "another default (None -> 0.0)" in problem


def test_adding_a_feature_with_a_default_is_compatible():
    golden = [compat.describe(d.REGION_MARKET_V1)]
    extra = d.Feature("market_days_on_market", d.ValueType.FLOAT64, None, "days on market")
    grown = _with_features(d.REGION_MARKET_V1, [*d.REGION_MARKET_V1.features, extra])
    assert compat.check(golden, [grown]) == []
    merged = compat.merge(golden, [grown])
    assert merged[0]["features"][-1] == {
        "name": "market_days_on_market",
        "type": "float64",
        "default": None,
    }


def test_a_version_leaves_only_after_a_newer_one_exists():
    golden = [compat.describe(d.USER_GEO_V1)]
    (problem,) = compat.check(golden, [])
    assert "user_geo:1 was removed without a newer version" in problem
    v2 = dataclasses.replace(d.USER_GEO_V1, version=2)
    assert compat.check(golden, [v2]) == []
    merged = compat.merge(golden, [v2])  # the retired version stays in the golden
    assert [(e["name"], e["version"]) for e in merged] == [("user_geo", 1), ("user_geo", 2)]
    v3 = dataclasses.replace(d.USER_GEO_V1, version=3)
    assert "number them 1, 2, 3" in compat.check(golden, [d.USER_GEO_V1, v3])[0]


def test_merge_refuses_an_incompatible_change():
    trimmed = _with_features(d.USER_GEO_V1, d.USER_GEO_V1.features[:1])
    with pytest.raises(ValueError, match="incompatible feature view change"):
        compat.merge([compat.describe(d.USER_GEO_V1)], [trimmed])


def test_the_two_newest_versions_are_materialized_and_models_are_checked_against_them():
    v2 = dataclasses.replace(d.USER_GEO_V1, version=2)
    v3 = dataclasses.replace(d.USER_GEO_V1, version=3)
    registry = d.Registry((d.USER_GEO_V1, v2, v3, d.USER_BEHAVIOUR_V1))
    assert [v.version for v in registry.materialized("user_geo")] == [2, 3]
    assert registry.check_served({"user_geo": 3, "user_behaviour": 1}) == []
    old, new = registry.check_served({"user_geo": 1}), registry.check_served({"user_geo": 4})
    assert old == [
        "the model wants user_geo:1, the store materializes user_geo:2, user_geo:3: "
        "retrain the model on a served version"
    ]
    assert "deploy the gateways and store of the release that defines it" in new[0]
    assert "no feature view 'region_market'" in registry.check_served({"region_market": 1})[0]


def test_feature_names_are_the_model_side_keys():
    """The names a model reads are `transforms.features`' raw keys; the event weights are
    the same as the model side's."""
    from aiqleads.features.user_state import EVENT_WEIGHTS
    from transforms import features as f

    assert EVENT_WEIGHTS == f.EVENT_WEIGHTS
    shared = {
        d.USER_VIEWS: f.USER_VIEWS,
        d.USER_CLICKS: f.USER_CLICKS,
        d.USER_INQUIRIES: f.USER_INQUIRIES,
        d.USER_PURCHASES: f.USER_PURCHASES,
        d.USER_MEDIAN_PRICE: f.USER_MEDIAN_PRICE,
        d.USER_LEAD_EVENTS: f.USER_LEAD_EVENTS,
        d.USER_LATITUDE: f.USER_LATITUDE,
        d.USER_LONGITUDE: f.USER_LONGITUDE,
        d.LEAD_LATITUDE: f.LEAD_LATITUDE,
        d.LEAD_LONGITUDE: f.LEAD_LONGITUDE,
        d.LEAD_REGION: f.REGION,
        d.LEAD_PROPERTY_TYPE: f.PROPERTY_TYPE,
        d.LEAD_PRICE: f.PRICE,
        d.LEAD_BEDROOMS: f.BEDROOMS,
        d.LEAD_BATHROOMS: f.BATHROOMS,
        d.LEAD_LIVING_AREA: f.LIVING_AREA,
        d.MARKET_DEMAND: f.MARKET_DEMAND,
        d.MARKET_MEDIAN_PRICE: f.MARKET_MEDIAN_PRICE,
        d.MARKET_INVENTORY: f.MARKET_INVENTORY,
        d.MARKET_PRICE_TREND: f.MARKET_PRICE_TREND,
    }
    for ours, theirs in shared.items():
        assert ours == theirs
    every = {feature.name for view in d.VIEWS for feature in view.features}
    assert set(shared) <= every
