"""Carried history: the as-of joins over a state's rows (one per user, lead and event type,
with a count) give what they give over the events the rows stand for."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from aiqleads import contracts as c
from aiqleads.errors import DataError
from components.example_gen import features_join, history_state
from transforms import features as f

TS = features_join.QUERY_TS
TYPES = ["view", "click", "inquiry", "purchase"]
WINDOW_START = 1_000_000


def _leads(rng: np.random.Generator, n: int) -> pd.DataFrame:
    price = rng.choice([100_000.0, 250_000.0, 250_000.0, 400_000.0, 975_500.0], n)
    price[rng.random(n) < 0.1] = np.nan  # some leads without a price
    return pd.DataFrame(
        {
            c.LEAD_ID: [f"l{i}" for i in range(n)],
            c.LATITUDE: rng.uniform(30, 40, n),
            c.LONGITUDE: rng.uniform(-100, -80, n),
            c.PRICE: price,
            c.PROPERTY_TYPE: rng.choice(["house", "condo", "land"], n),
            c.REGION: rng.choice(["r1", "r2", "r3"], n),
        }
    )


def _world(seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(history events, queries, leads, users): users with 0..60 events before the window
    and 0..6 in it, queries in the window."""
    rng = np.random.default_rng(seed)
    leads = _leads(rng, 12)  # few leads: many repeats of (user, lead, type)
    rows, queries = [], []
    for u in range(300):
        user = f"u{u}"
        for ts in rng.integers(0, WINDOW_START, rng.integers(0, 61)):
            rows.append((user, f"l{rng.integers(12)}", rng.choice(TYPES), int(ts)))
        live = np.sort(rng.integers(WINDOW_START, WINDOW_START + 5000, rng.integers(0, 7)))
        for ts in live:
            rows.append((user, f"l{rng.integers(12)}", rng.choice(TYPES), int(ts)))
        for ts in rng.integers(WINDOW_START, WINDOW_START + 6000, 4):
            queries.append((user, f"l{rng.integers(12)}", int(ts)))
    history = pd.DataFrame(rows, columns=[c.USER_ID, c.LEAD_ID, c.EVENT_TYPE, TS])
    history[c.EVENT_ID] = [f"e{i:06d}" for i in range(len(history))]
    history = history.sort_values([TS, c.EVENT_ID]).reset_index(drop=True)
    query = pd.DataFrame(queries, columns=[c.USER_ID, c.LEAD_ID, TS])
    lead_of = leads.set_index(c.LEAD_ID)
    query[f.PROPERTY_TYPE] = lead_of.loc[query[c.LEAD_ID], c.PROPERTY_TYPE].to_numpy()
    query[f.REGION] = lead_of.loc[query[c.LEAD_ID], c.REGION].to_numpy()
    users = pd.DataFrame(
        {
            c.USER_ID: [f"u{u}" for u in range(300)],
            c.HOME_LATITUDE: np.nan,  # no homes: the location is the events' centroid
            c.HOME_LONGITUDE: np.nan,
        }
    )
    return history, query, leads, users


def _carried(history: pd.DataFrame) -> pd.DataFrame:
    """The history with every event before the window folded into carried rows, through
    the state's own files (encoded and read back)."""
    rows = history_state.fold(history, WINDOW_START)
    rows = history_state.decode_rows(history_state.encode_rows(rows))
    live = history[history[TS] >= WINDOW_START]
    out = pd.concat([rows, live], ignore_index=True)
    return out.sort_values([TS, c.EVENT_ID], kind="stable").reset_index(drop=True)


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_user_aggregates_over_carried_rows_equal_those_over_the_events(seed):
    history, queries, leads, users = _world(seed)
    carried = _carried(history)
    assert len(carried) < len(history)  # the state is smaller than what it stands for
    want = features_join.attach_user_features(queries, history, leads, users)
    got = features_join.attach_user_features(queries, carried, leads, users)
    exact = [f.USER_VIEWS, f.USER_CLICKS, f.USER_INQUIRIES, f.USER_PURCHASES]
    exact += [f.USER_DAYS_SINCE_LAST, f.USER_MEDIAN_PRICE]
    pd.testing.assert_frame_equal(got[exact], want[exact], check_exact=True)
    # The centroid adds count x coordinate instead of one coordinate at a time.
    geo = [f.USER_LATITUDE, f.USER_LONGITUDE]
    pd.testing.assert_frame_equal(got[geo], want[geo], rtol=1e-12)
    assert want[f.USER_MEDIAN_PRICE].notna().sum() > 500


@pytest.mark.parametrize("seed", [21, 22])
def test_pair_history_and_shares_over_carried_rows_equal_those_over_the_events(seed):
    history, queries, leads, _ = _world(seed)
    carried = _carried(history)

    def joins(hist: pd.DataFrame) -> pd.DataFrame:
        out = features_join.attach_pair_history(queries, hist)
        return features_join.attach_user_shares(out, hist, leads)

    want, got = joins(history), joins(carried)
    columns = [f.USER_LEAD_EVENTS, *f.USER_SHARES]
    pd.testing.assert_frame_equal(got[columns], want[columns], check_exact=True)
    assert (want[f.USER_LEAD_EVENTS] > 0).sum() > 100


def test_the_median_keeps_only_the_carried_prices_new_events_can_reach():
    # One user: 1,000 carried events at 1..1,000 and two new ones.
    hist = pd.DataFrame(
        {
            c.USER_ID: "u",
            c.PRICE: [*np.arange(1.0, 1001.0), 5.0, 7.0],
            features_join.CARRIED_EVENTS: [*np.ones(1000), np.nan, np.nan],
        }
    )
    rows = features_join.carried_price_rows(hist, features_join.is_carried(hist))
    # Medians of 1,000, 1,001 and 1,002 values lie within ranks 498..502: a few either side.
    assert 5 <= len(rows) <= 9
    assert rows[c.PRICE].median() == np.median(np.arange(1.0, 1001.0))


def test_state_market_keeps_each_regions_latest_day():
    market = pd.DataFrame(
        {
            c.REGION: ["a", "a", "b", "b", "a"],
            c.DATE: pd.to_datetime(
                ["2026-01-01", "2026-01-02", "2026-01-01", "2026-01-01", "2026-01-05"]
            ),
            c.DEMAND: [1.0, 2.0, 3.0, 4.0, 5.0],
            c.MEDIAN_PRICE: [10.0, 20.0, np.nan, 40.0, 50.0],
            c.INVENTORY: [1.0, 1.0, 1.0, 1.0, 1.0],
            c.PRICE_TREND: [0.1, 0.2, 0.3, 0.4, 0.5],
        }
    )
    kept = history_state.carried_market(market, dt.date(2026, 1, 3))
    assert list(kept[c.DEMAND]) == [2.0, 3.0, 4.0]


def test_carried_rows_round_trip_through_their_csv_lines():
    """Values a CSV line must quote (a comma, a quote) come back as they were, with the
    counts and seconds as integers; no rows give no text and an empty, typed frame."""
    rows = pd.DataFrame(
        {
            c.USER_ID: ["u,1", 'u"2', "u3"],
            c.LEAD_ID: ["L1", "L 2", "L,3"],
            c.EVENT_TYPE: ["view", "inquiry", "view"],
            history_state.TS: np.array([1_767_225_600, 5, 2**40], dtype=np.int64),
            history_state.CARRIED: [3, 1, 12],
        }
    )
    back = history_state.decode_rows(history_state.encode_rows(rows))
    assert back[c.USER_ID].tolist() == rows[c.USER_ID].tolist()
    assert back[c.LEAD_ID].tolist() == rows[c.LEAD_ID].tolist()
    assert back[history_state.TS].tolist() == rows[history_state.TS].tolist()
    assert back[history_state.CARRIED].tolist() == [3.0, 1.0, 12.0]
    assert history_state.encode_rows(rows.iloc[:0]) == ""
    empty = history_state.decode_rows("")
    assert empty.empty and empty[history_state.TS].dtype == np.int64


def test_a_damaged_rows_file_is_a_clear_error(tmp_path):
    path = tmp_path / "carried-00000-of-00001.csv"
    path.write_text("u1,L1,view,not-a-second,1\n")
    with pytest.raises(DataError, match="not a file of carried history rows"):
        history_state.read_rows(str(path))
