"""Real-data adapters: each loads the shared files and yields valid contracts with the
row counts the sources have (see ../shared/data/README.md)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from aiqleads import contracts, layout
from aiqleads.data import adapters, validate
from aiqleads.data.adapters import barossa, kingcounty, uci_restaurant
from aiqleads.errors import DataError

SHARED = adapters.default_shared_data()
pytestmark = pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared data not found at {SHARED}")


def _assert_valid(data: adapters.Imported) -> None:
    """Every table passes its contract; events reference existing users and leads."""
    for contract, frame in (
        (contracts.LEADS, data.leads),
        (contracts.USERS, data.users),
        (contracts.EVENTS, data.events),
        (contracts.MARKET, data.market),
    ):
        report = validate.validate_frame(frame, contract, source=contract.name)
        assert report.bad_rows == 0, report.violations[:3]
    assert data.events[contracts.USER_ID].isin(data.users[contracts.USER_ID]).all()
    assert data.events[contracts.LEAD_ID].isin(data.leads[contracts.LEAD_ID]).all()
    assert data.events[contracts.TIMESTAMP].is_monotonic_increasing
    assert data.market[contracts.DATE].is_monotonic_increasing
    assert data.manifest["attribution"]


def test_kingcounty_real_leads_and_weekly_market():
    data = kingcounty.build(adapters.source_dir("kingcounty"), seed=1)
    _assert_valid(data)
    assert len(data.leads) == 21_612
    assert data.leads[contracts.REGION].nunique() == 70
    # 221,900 USD, 1,180 sqft -> 109.6 m2, sold 2014-10-13 (the file's first row).
    first = data.leads.iloc[0]
    assert first[contracts.LEAD_ID] == "7129300520-20141013"
    assert first[contracts.PRICE] == 221_900.0 and first[contracts.LIVING_AREA] == 109.6
    assert first[contracts.LISTED_DATE] == "2014-10-13" and first[contracts.STATUS] == "sold"
    # Weekly rows per zip code, on Sundays; demand sums to the number of sales.
    assert data.market[contracts.DEMAND].sum() == 21_612
    weekdays = {dt.date.fromisoformat(d).weekday() for d in data.market[contracts.DATE].unique()}
    assert weekdays == {6}
    assert len(data.market) == 70 * data.market[contracts.DATE].nunique()
    # Simulated users act through the funnel on real leads.
    mix = data.events[contracts.EVENT_TYPE].value_counts()
    assert mix["view"] > mix["click"] > mix["inquiry"] > mix["purchase"] > 0
    assert len(data.users) == kingcounty.USERS


def test_barossa_listings_and_reviews():
    data = barossa.build(adapters.source_dir("barossa"), seed=0)
    _assert_valid(data)
    assert len(data.leads) == 337
    assert len(data.events) == 19_901 and (data.events[contracts.EVENT_TYPE] == "purchase").all()
    assert len(data.users) == 18_779
    assert data.leads[contracts.PRICE].isna().sum() == 19  # missing prices kept as null
    row = data.leads.set_index(contracts.LEAD_ID).loc["1125097"]
    assert row[contracts.PRICE] == 254.0 and row[contracts.REGION] == "Angaston"
    assert data.leads[contracts.REGION].nunique() == 25
    assert len(data.span_days) == data.events[contracts.TIMESTAMP].str.slice(0, 10).nunique()
    assert barossa.parse_price(barossa.pd.Series(["$1,254.00", None])).tolist()[0] == 1254.0


def test_uci_restaurant_places_users_ratings(tmp_path):
    summary = adapters.run("uci-restaurant", tmp_path / "uci", seed=5)
    assert summary.rows == {"leads": 130, "users": 138, "events": 1_161, "market": 90}
    events = [p for p in (tmp_path / "uci" / layout.SPANS_DIR).glob("*/events.csv")]
    assert len(events) == uci_restaurant.DAYS
    data = uci_restaurant.build(adapters.source_dir("uci-restaurant"), seed=5)
    _assert_valid(data)
    mix = data.events[contracts.EVENT_TYPE].value_counts().to_dict()
    assert mix == {"inquiry": 486, "click": 421, "view": 254}  # ratings 2 / 1 / 0
    assert set(data.leads[contracts.REGION]) == {"san-luis-potosi", "cuernavaca", "ciudad-victoria"}
    assert set(data.leads[contracts.PRICE]) == {1.0, 2.0, 3.0}
    manifest = json.loads((tmp_path / "uci" / layout.MANIFEST).read_text())
    assert "CC BY 4.0" in manifest["attribution"]
    # The order is seeded: same seed, same events; another seed, another order.
    again = uci_restaurant.build(adapters.source_dir("uci-restaurant"), seed=5)
    other = uci_restaurant.build(adapters.source_dir("uci-restaurant"), seed=6)
    assert data.events.equals(again.events)
    assert not data.events[contracts.LEAD_ID].equals(other.events[contracts.LEAD_ID])


def test_source_resolution_errors(tmp_path, monkeypatch):
    monkeypatch.setenv(adapters.ENV_SHARED_DATA, str(tmp_path))
    assert adapters.default_shared_data() == tmp_path
    with pytest.raises(DataError, match="--source DIR"):
        adapters.source_dir("barossa")
    (tmp_path / "inside_airbnb_barossa").mkdir()
    with pytest.raises(DataError, match="missing listings.csv, reviews.csv"):
        adapters.source_dir("barossa")
    with pytest.raises(DataError, match="unknown data set"):
        adapters.source_dir("zillow")
    # --source may name the data set's own folder too.
    real = SHARED / "uci_restaurant"
    assert adapters.source_dir("uci-restaurant", real) == real


def test_day_numbers_count_days_since_1970_and_refuse_other_formats():
    # 2000-03-01: 30 years of 365 days, 7 leap days (1972..1996), then January and February.
    assert adapters.day_numbers(["1970-01-01", "1970-01-02", "2000-03-01"]).tolist() == [
        0,
        1,
        30 * 365 + 7 + 31 + 29,
    ]
    with pytest.raises(DataError, match="not YYYY-MM-DD"):
        adapters.day_numbers(["2000-03-01", "01/03/2000"])


def test_market_frame_has_the_contract_columns_in_order():
    frame = adapters.market_frame([("north", "2024-01-01", 3.0, 100.0, 2, 0.0)])
    assert tuple(frame.columns) == contracts.MARKET.columns
    assert frame.iloc[0].tolist() == ["north", "2024-01-01", 3.0, 100.0, 2, 0.0]
