"""The synthetic generator: determinism, contract validity, a learnable signal, drift."""

from __future__ import annotations

import dataclasses
import json
import pathlib

import numpy as np
import pandas as pd
import pytest

from aiqleads import contracts, layout
from aiqleads.data import synth, synth_behaviour
from aiqleads.data.dataset_validation import validate_dataset
from aiqleads.errors import DataError

SMALL = dataclasses.replace(synth.PRESETS["smoke"], days=12)
STATS = synth.SynthConfig(users=1_500, leads=600, days=14, events=40_000, seed=7, name="stats")


def _files(root: pathlib.Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _events(root: pathlib.Path) -> pd.DataFrame:
    frames = [
        pd.read_csv(layout.table_path(root, contracts.EVENTS, d), dtype=str, keep_default_na=False)
        for d in layout.list_spans(root)
    ]
    return pd.concat(frames, ignore_index=True)


def _market(root: pathlib.Path) -> pd.DataFrame:
    frames = [
        pd.read_csv(layout.table_path(root, contracts.MARKET, d), dtype={contracts.REGION: str})
        for d in layout.list_spans(root)
    ]
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def stats_set(tmp_path_factory) -> pathlib.Path:
    out = tmp_path_factory.mktemp("stats")
    synth.generate(STATS, out)
    return out


def test_same_seed_same_bytes_different_seed_differs(tmp_path):
    a, b, c = (
        synth.generate(cfg, tmp_path / name).out
        for name, cfg in (
            ("a", SMALL),
            ("b", SMALL),
            ("c", dataclasses.replace(SMALL, seed=SMALL.seed + 1)),
        )
    )
    files_a = _files(a)
    assert files_a == _files(b)
    files_c = _files(c)
    assert files_a.keys() == files_c.keys()
    assert files_a["leads.csv"] != files_c["leads.csv"]
    assert files_a["spans/2026-01-05/events.csv"] != files_c["spans/2026-01-05/events.csv"]


def test_layout_manifest_and_contracts(stats_set):
    manifest = json.loads((stats_set / layout.MANIFEST).read_text())
    assert manifest["spans"] == {"first": "2026-01-01", "last": "2026-01-14", "count": 14}
    assert len(layout.list_spans(stats_set)) == 14
    report = validate_dataset(stats_set)
    assert report.bad_rows == 0
    counts = report.rows_by_contract()
    assert counts["leads"] == (600, 0) and counts["users"] == (1_500, 0)
    assert counts["events"][0] == manifest["rows"]["events"]
    assert 0.9 * STATS.events < counts["events"][0] < 1.1 * STATS.events
    assert counts["market"][0] == 14 * 40  # every region, every day
    truth = pd.read_csv(stats_set / layout.GROUND_TRUTH_DIR / layout.USER_PREFERENCES)
    assert len(truth) == 1_500 and truth["radius_km"].between(1, 20).all()


def test_funnel_ordering_and_purchase_follows_inquiry(stats_set):
    events = _events(stats_set)
    mix = events[contracts.EVENT_TYPE].value_counts()
    assert mix["view"] > mix["click"] > mix["inquiry"] > mix["purchase"] > 0
    inquiries = events[events[contracts.EVENT_TYPE] == "inquiry"]
    purchases = events[events[contracts.EVENT_TYPE] == "purchase"]
    pairs = purchases.merge(
        inquiries, on=[contracts.USER_ID, contracts.LEAD_ID], suffixes=("", "_inq")
    )
    pairs = pairs[pairs[contracts.TIMESTAMP + "_inq"] < pairs[contracts.TIMESTAMP]]
    assert set(purchases[contracts.EVENT_ID]) == set(pairs[contracts.EVENT_ID])
    # Some events carry the request id of a recommendation, others none.
    with_request = (events[contracts.REQUEST_ID] != "").mean()
    assert 0.2 < with_request < 0.6


def test_users_engage_more_near_their_hidden_home(stats_set):
    events = _events(stats_set)
    leads = pd.read_csv(stats_set / "leads.csv", dtype={contracts.LEAD_ID: str})
    truth = pd.read_csv(stats_set / layout.GROUND_TRUTH_DIR / layout.USER_PREFERENCES)
    views = events[events[contracts.EVENT_TYPE] == "view"].merge(leads, on=contracts.LEAD_ID)
    views = views.merge(truth, on=contracts.USER_ID)
    d = (
        synth_behaviour.distance_km(
            views[contracts.HOME_LATITUDE].to_numpy(),
            views[contracts.HOME_LONGITUDE].to_numpy(),
            views[contracts.LATITUDE].to_numpy(),
            views[contracts.LONGITUDE].to_numpy(),
        )
        / views["radius_km"].to_numpy()
    )
    clicks = events[events[contracts.EVENT_TYPE] == "click"]
    clicked = set(zip(clicks[contracts.USER_ID], clicks[contracts.LEAD_ID], strict=True))
    was_clicked = np.array(
        [
            (u, lead) in clicked
            for u, lead in zip(views[contracts.USER_ID], views[contracts.LEAD_ID], strict=True)
        ]
    )
    near, far = d < 1.0, d > 2.5
    assert near.sum() > 500 and far.sum() > 300
    # Click probability is 0.04 + 0.5 * match: far leads have match ~0, so ~4-6 %; near
    # leads keep much of their match.
    assert was_clicked[far].mean() < 0.08
    assert was_clicked[near].mean() > 2 * was_clicked[far].mean()
    # Views themselves are drawn towards home: most are within 3 radii.
    assert near.mean() > far.mean()


def test_views_follow_preferences_more_when_users_see_more_candidates():
    world = synth.build_world(SMALL)
    seed = np.random.SeedSequence(3)

    def mean_view_match(candidates: int) -> float:
        sim = synth_behaviour.simulate(
            world.population, world.catalogue, SMALL.days, 20_000, seed, candidates=candidates
        )
        views = sim.code == synth_behaviour.VIEW
        return float(
            synth_behaviour.match_score(
                world.population, world.catalogue, sim.user[views], sim.lead[views]
            ).mean()
        )

    one, page, default = mean_view_match(1), mean_view_match(8), mean_view_match(24)
    # One candidate is a random draw near home; a page of them lets the user pick.
    assert one < page < default
    assert default > 1.5 * one
    with pytest.raises(ValueError, match="candidates"):
        synth_behaviour.simulate(world.population, world.catalogue, 2, 10, seed, candidates=0)


@pytest.mark.parametrize("scenario", synth.DRIFT_SCENARIOS)
def test_drift_shifts_only_the_drifted_spans(tmp_path, scenario):
    base_cfg = dataclasses.replace(STATS, users=800, leads=400, events=20_000, days=10)
    drift_cfg = dataclasses.replace(base_cfg, drift=scenario, drift_days=3)
    base = synth.generate(base_cfg, tmp_path / "base").out
    drifted = synth.generate(drift_cfg, tmp_path / "drift").out
    days = [layout.span_name(d) for d in layout.list_spans(base)]
    before, during = days[:7], days[7:]
    base_files, drift_files = _files(base), _files(drifted)
    for day in before:
        for table in ("events.csv", "market.csv"):
            key = f"spans/{day}/{table}"
            assert base_files[key] == drift_files[key], key
    assert validate_dataset(drifted).bad_rows == 0
    info = json.loads((drifted / layout.GROUND_TRUTH_DIR / "drift.json").read_text())
    assert info["first_day"] == during[0]

    def by_day(frame, column):
        return frame.assign(day=frame[column].str.slice(0, 10))

    if scenario == "price_inflation":
        region = info["region"]
        m_base, m_drift = (_market(r) for r in (base, drifted))
        ratio = (
            m_drift[m_drift[contracts.REGION] == region].set_index(contracts.DATE)[
                contracts.MEDIAN_PRICE
            ]
            / m_base[m_base[contracts.REGION] == region].set_index(contracts.DATE)[
                contracts.MEDIAN_PRICE
            ]
        )
        assert ratio.loc[before].eq(1.0).all()
        assert ratio.loc[during].between(1.3, 1.4).all()
    elif scenario == "new_hotspot":
        leads = pd.read_csv(drifted / "leads.csv", dtype=str)
        hot = set(leads.loc[leads[contracts.REGION] == info["region"], contracts.LEAD_ID])
        assert len(hot) == info["leads"]
        events = by_day(_events(drifted), contracts.TIMESTAMP)
        share = events.groupby("day")[contracts.LEAD_ID].apply(lambda s: s.isin(hot).mean())
        assert share.loc[before].eq(0).all()
        assert (share.loc[during] > 0.05).all()
    else:

        def click_rate(root):
            events = by_day(_events(root), contracts.TIMESTAMP)
            counts = events.groupby(["day", contracts.EVENT_TYPE]).size().unstack(fill_value=0)
            return counts["click"] / counts["view"]

        ratio = click_rate(drifted) / click_rate(base)
        assert ratio.loc[before].eq(1.0).all()
        assert (ratio.loc[during] > 1.4).all()


def test_bad_config_and_existing_output_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="drift_days=10 must be in"):
        dataclasses.replace(SMALL, drift="event_mix", drift_days=10, days=10).validated()
    with pytest.raises(DataError, match="unknown drift"):
        dataclasses.replace(SMALL, drift="earthquake").validated()
    with pytest.raises(DataError, match="unknown preset"):
        synth.preset("huge")
    with pytest.raises(DataError, match="candidates_per_view=0 is out of range"):
        synth.preset("smoke", candidates_per_view=0)
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="not empty"):
        synth.generate(SMALL, tmp_path)
    with pytest.raises(DataError, match="not a data set"):
        synth.generate(SMALL, tmp_path, overwrite=True)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_presets_sizes():
    assert synth.preset("default").users == 2_000 and synth.preset("default").days == 30
    smoke = synth.preset("smoke", seed=3)
    assert (smoke.users, smoke.leads, smoke.days, smoke.seed) == (300, 200, 14, 3)
