"""As-of joins, labels, negatives and split on the tiny hand-made data set.

Expected values are derived by hand from tests/testdata/pipeline/tiny (see its README).
"""

from __future__ import annotations

import datetime as dt
import pathlib

import numpy as np
import pandas as pd
import pytest

from aiqleads.errors import DataError
from components.example_gen import interactions, snapshots, window
from transforms import features as f

TINY = pathlib.Path(__file__).resolve().parents[2] / "testdata" / "pipeline" / "tiny"
DAYS = [dt.date(2026, 1, d) for d in range(1, 5)]


def _row(frame: pd.DataFrame, user: str, lead: str, engagement: int) -> pd.Series:
    hit = frame[
        (frame[f.USER_ID] == user)
        & (frame[f.LEAD_ID] == lead)
        & (frame[f.ENGAGEMENT] == engagement)
    ]
    assert len(hit) == 1, hit
    return hit.iloc[0]


@pytest.fixture(scope="module")
def examples() -> pd.DataFrame:
    sampling = interactions.SamplingConfig(negatives_per_positive=3, hard_fraction=0.5, seed=7)
    return interactions.build_examples(TINY, DAYS, eval_days=1, sampling=sampling)


def test_one_positive_per_user_lead_day_with_strongest_label(examples):
    positives = examples[examples[f.ENGAGEMENT] > 0]
    # 13 events collapse to 11 (user, lead, day) pairs: E1+E2 and E11+E12 merge.
    assert len(positives) == 11
    merged = _row(examples, "U1", "L1", 2)  # view 09:00 + click 09:05 -> click at 09:00
    assert merged[f.EVENT_TIMESTAMP] == 1767258000  # 2026-01-01T09:00:00Z
    assert _row(examples, "U3", "L2", 3)[f.EVENT_TIMESTAMP] == 1767517200  # 2026-01-04T09:00
    assert _row(examples, "U1", "L1", 4)[f.EVENT_TIMESTAMP] == 1767434400  # purchase


def test_user_aggregates_strictly_before_event_time(examples):
    # U2 at 2026-01-02T08:00: only E3 (view of L4, day 1 10:00); E6 in the same second
    # does not count.
    row = _row(examples, "U2", "L4", 3)
    assert (row[f.USER_VIEWS], row[f.USER_CLICKS], row[f.USER_INQUIRIES]) == (1, 0, 0)
    assert row[f.USER_DAYS_SINCE_LAST] == pytest.approx(22 / 24)
    assert row[f.USER_MEDIAN_PRICE] == pytest.approx(400_000)
    assert (row[f.USER_LATITUDE], row[f.USER_LONGITUDE]) == pytest.approx((47.40, -122.20))
    # U1's purchase at day 3 10:00: E1, E2, E4, E8 before it; home coordinates win.
    row = _row(examples, "U1", "L1", 4)
    assert (row[f.USER_VIEWS], row[f.USER_CLICKS], row[f.USER_PURCHASES]) == (3, 1, 0)
    assert row[f.USER_MEDIAN_PRICE] == pytest.approx(450_000)  # median of 500k,500k,300k,400k
    assert row[f.USER_DAYS_SINCE_LAST] == pytest.approx(1 / 24)
    assert (row[f.USER_LATITUDE], row[f.USER_LONGITUDE]) == pytest.approx((47.61, -122.31))
    # U3's first event: no history, no home -> missing.
    row = _row(examples, "U3", "L1", 1)
    assert row[f.USER_VIEWS] == 0
    assert np.isnan(row[f.USER_DAYS_SINCE_LAST]) and np.isnan(row[f.USER_LATITUDE])


def test_user_lead_history_counts_earlier_events_on_the_same_lead(examples):
    # Weights view 1, click 2, inquiry 4, purchase 8; strictly before the example's time.
    assert _row(examples, "U1", "L1", 2)[f.USER_LEAD_EVENTS] == 0  # its own first event
    assert _row(examples, "U1", "L1", 4)[f.USER_LEAD_EVENTS] == 3  # E1 view + E2 click
    assert _row(examples, "U2", "L4", 3)[f.USER_LEAD_EVENTS] == 1  # E3 view; not E6 (L2)
    assert _row(examples, "U3", "L2", 3)[f.USER_LEAD_EVENTS] == 0  # E11 is the same second
    negatives = examples[examples[f.ENGAGEMENT] == 0]
    assert (negatives[f.USER_LEAD_EVENTS] == 0).all()  # never-engaged leads by construction


def test_pair_history_snapshot_matches_the_as_of_day():
    def pairs(day: str) -> dict:
        frame = snapshots.load_pair_history(TINY, day)
        return frame.set_index([f.USER_ID, f.LEAD_ID])[f.USER_LEAD_EVENTS].to_dict()

    day2 = {("U1", "L1"): 3, ("U1", "L2"): 1, ("U2", "L2"): 1, ("U2", "L4"): 5, ("U3", "L1"): 1}
    assert pairs("2026-01-02") == day2
    day3 = {**day2, ("U1", "L1"): 11, ("U1", "L4"): 1, ("U2", "L5"): 2}
    assert pairs("2026-01-03") == day3


def test_type_share_is_the_users_earlier_weight_on_the_leads_property_type(examples):
    # U1's purchase of L1 (house) at day 3 10:00: E1 view + E2 click of L1 (house, 3),
    # E4 view of L2 (condo, 1), E8 view of L4 (townhouse, 1): 3 of 5.
    assert _row(examples, "U1", "L1", 4)[f.USER_TYPE_SHARE] == pytest.approx(0.6)
    # U2's inquiry on L4 (townhouse) at day 2 08:00: only E3 (townhouse); E6 is the same
    # second.
    assert _row(examples, "U2", "L4", 3)[f.USER_TYPE_SHARE] == pytest.approx(1.0)
    # U2's click on L5 (house): 6 earlier weight units, none on houses.
    assert _row(examples, "U2", "L5", 2)[f.USER_TYPE_SHARE] == 0.0
    # U3's first event: no history, so missing rather than 0.
    assert np.isnan(_row(examples, "U3", "L1", 1)[f.USER_TYPE_SHARE])
    shares = examples[f.USER_TYPE_SHARE].dropna()
    assert ((shares >= 0) & (shares <= 1)).all()


def test_region_share_is_the_users_earlier_weight_on_the_leads_region(examples):
    # U1's purchase of L1 (north): E1 + E2 (L1) and E4 (L2) are north, E8 (L4) south: 4 of 5.
    assert _row(examples, "U1", "L1", 4)[f.USER_REGION_SHARE] == pytest.approx(0.8)
    # U2's inquiry on L4 (south) at day 2 08:00: only E3 (L4, south).
    assert _row(examples, "U2", "L4", 3)[f.USER_REGION_SHARE] == pytest.approx(1.0)
    # U2's click on L5 (south): E3 view 1 + E5 inquiry 4 south, E6 view 1 north: 5 of 6.
    assert _row(examples, "U2", "L5", 2)[f.USER_REGION_SHARE] == pytest.approx(5 / 6)
    assert np.isnan(_row(examples, "U3", "L1", 1)[f.USER_REGION_SHARE])
    # Type and region shares differ on these rows: neither is read from the other's column.
    assert _row(examples, "U2", "L5", 2)[f.USER_TYPE_SHARE] == 0.0


def test_user_share_snapshots_match_the_as_of_day():
    shares = snapshots.load_user_shares(TINY, "2026-01-02")
    assert set(shares) == set(f.USER_SHARES)
    want = {
        f.USER_TYPE_SHARE: {
            ("U1", "house"): 0.75,
            ("U1", "condo"): 0.25,
            ("U2", "townhouse"): 5 / 6,
            ("U2", "condo"): 1 / 6,
            ("U3", "house"): 1.0,
        },
        # E1, E2, E4 north; E3, E5 south and E6 north; E7 north.
        f.USER_REGION_SHARE: {
            ("U1", "north"): 1.0,
            ("U2", "south"): 5 / 6,
            ("U2", "north"): 1 / 6,
            ("U3", "north"): 1.0,
        },
    }
    for key, column in f.USER_SHARES.items():
        got = shares[key].set_index([f.USER_ID, column])[key].to_dict()
        assert got.keys() == want[key].keys(), key
        assert all(got[k] == pytest.approx(v) for k, v in want[key].items()), key


def test_market_is_latest_row_on_or_before_event_date(examples):
    # South has no market row on 2026-01-03: the 2026-01-02 row applies.
    row = _row(examples, "U2", "L5", 2)
    assert row[f.MARKET_DEMAND] == 6 and row[f.MARKET_MEDIAN_PRICE] == 360_000
    assert row[f.PRICE_BAND] == "above_market"  # 800k / 360k
    assert row[f.LEAD_AGE_DAYS] == pytest.approx(15 / 24)  # listed 2026-01-03, event 15:00


def test_negatives_are_unengaged_listed_leads(examples):
    negatives = examples[examples[f.ENGAGEMENT] == 0]
    assert len(negatives) > 0
    engaged = set(
        zip(
            examples[f.USER_ID][examples[f.ENGAGEMENT] > 0],
            examples[f.LEAD_ID][examples[f.ENGAGEMENT] > 0],
            strict=True,
        )
    )
    for user, lead, ts in zip(
        negatives[f.USER_ID], negatives[f.LEAD_ID], negatives[f.EVENT_TIMESTAMP], strict=True
    ):
        assert (user, lead) not in engaged
        if lead == "L5":  # listed 2026-01-03 00:00 UTC
            assert ts >= 1767398400
    assert not negatives.duplicated([f.USER_ID, f.LEAD_ID, f.EVENT_TIMESTAMP]).any()


def test_sampling_is_seeded_and_mixes_hard_negatives():
    leads = pd.DataFrame(
        {
            "lead_id": [f"L{i}" for i in range(200)],
            "region": ["a"] * 100 + ["b"] * 100,
            "listed_date": pd.to_datetime(["2020-01-01"] * 200),
        }
    )
    positives = pd.DataFrame(
        {
            "user_id": ["u"] * 50,
            "lead_id": ["L0"] * 50,
            "ts_seconds": np.arange(50) * 86_400 + 1.6e9,
        }
    ).astype({"ts_seconds": np.int64})
    # Popularity concentrated on region b: hard negatives are the only way to get region a.
    popularity = pd.Series({f"L{i}": 10_000 for i in range(100, 200)})
    cfg = interactions.SamplingConfig(
        negatives_per_positive=4, hard_fraction=0.5, popularity_exponent=1.0, seed=3
    )
    first = interactions.sample_negatives(positives, leads, popularity, cfg)
    again = interactions.sample_negatives(positives, leads, popularity, cfg)
    pd.testing.assert_frame_equal(first, again)
    in_a = first["lead_id"].str[1:].astype(int) < 100
    assert 0.4 < in_a.mean() < 0.6  # ~half same-region hard negatives, ~half popular ones
    only_pop = interactions.SamplingConfig(
        negatives_per_positive=4, hard_fraction=0.0, popularity_exponent=1.0, seed=3
    )
    pop = interactions.sample_negatives(positives, leads, popularity, only_pop)
    assert (pop["lead_id"].str[1:].astype(int) < 100).mean() < 0.05
    uniform = interactions.SamplingConfig(
        negatives_per_positive=4, hard_fraction=0.0, seed=3, popularity_exponent=0.0
    )
    flat = interactions.sample_negatives(positives, leads, popularity, uniform)
    assert 0.4 < (flat["lead_id"].str[1:].astype(int) < 100).mean() < 0.6  # popularity ignored


def test_time_split_puts_last_days_in_eval(examples):
    eval_days = pd.to_datetime(examples[f.EVENT_TIMESTAMP][examples["split"] == "eval"], unit="s")
    train_days = pd.to_datetime(examples[f.EVENT_TIMESTAMP][examples["split"] == "train"], unit="s")
    assert eval_days.dt.date.unique().tolist() == [dt.date(2026, 1, 4)]
    assert train_days.max() < pd.Timestamp("2026-01-04")


def test_bad_sampling_and_window_are_rejected():
    with pytest.raises(DataError, match="hard_fraction"):
        interactions.SamplingConfig(hard_fraction=1.5)
    with pytest.raises(DataError, match="popularity_exponent"):
        interactions.SamplingConfig(popularity_exponent=-1)
    with pytest.raises(DataError, match="eval_days"):
        interactions.build_examples(TINY, DAYS, eval_days=4, sampling=interactions.SamplingConfig())
    assert window.select_window(TINY, 2) == DAYS[2:]
    assert window.select_window(TINY, 10, as_of=dt.date(2026, 1, 2)) == DAYS[:2]


def test_fingerprint_changes_with_a_new_span(tmp_path):
    import shutil

    root = tmp_path / "data"
    shutil.copytree(TINY, root)
    before = window.fingerprint(root, window.select_window(root, 3))
    assert before == window.fingerprint(root, window.select_window(root, 3))
    shutil.copytree(root / "spans" / "2026-01-04", root / "spans" / "2026-01-05")
    assert window.fingerprint(root, window.select_window(root, 3)) != before


def test_catalogue_holds_active_listed_leads_with_market_rows():
    catalogue = snapshots.load_catalogue(TINY, dt.date(2026, 1, 2))
    assert catalogue[f.LEAD_ID].tolist() == ["L1", "L2", "L4"]  # L3 sold, L5 later, L6 withdrawn
    north = catalogue[catalogue[f.REGION] == "north"]
    assert (north[f.MARKET_DEMAND] == 12).all() and (north[f.MARKET_MEDIAN_PRICE] == 410_000).all()
    assert catalogue[f.LEAD_AGE_DAYS].iloc[0] == pytest.approx(33, abs=1e-3)  # L1 listed 12-01


def test_user_snapshot_covers_the_whole_as_of_day():
    users = snapshots.load_user_snapshot(TINY, "2026-01-02").set_index(f.USER_ID)
    assert users.loc["U1", f.USER_VIEWS] == 2 and users.loc["U1", f.USER_CLICKS] == 1
    assert users.loc["U1", f.USER_DAYS_SINCE_LAST] == pytest.approx(37 / 24)
    assert users.loc["U2", f.USER_INQUIRIES] == 1
    assert users.loc["U2", f.USER_LATITUDE] == pytest.approx((47.40 * 2 + 47.62) / 3)
    assert users.loc["U3", f.USER_MEDIAN_PRICE] == pytest.approx(500_000)
