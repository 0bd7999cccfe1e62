"""The simulated users: the generator's behaviour model on shown lists, and the scenarios."""

from __future__ import annotations

import numpy as np
import pytest

from aiqleads.data import synth_behaviour as behaviour
from aiqleads.errors import ConfigError
from aiqleads.simulator import scenarios
from aiqleads.simulator.traffic import check_loopback
from aiqleads.simulator.world import load_world


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from aiqleads.data import synth

    out = tmp_path_factory.mktemp("sim") / "smoke"
    synth.generate(synth.preset("smoke"), out)
    return load_world(out)


def best_and_worst(world, user: int) -> tuple[int, int, float, float]:
    on_market = np.flatnonzero(world.catalogue.available_until > 0)
    score = world.match(np.full(len(on_market), user), on_market)
    order = np.argsort(score)
    return on_market[order[-1]], on_market[order[0]], score[order[-1]], score[order[0]]


def test_users_view_the_lead_that_suits_them(world):
    user = int(np.argmax(world.population.activity))
    best, worst, s_best, s_worst = best_and_worst(world, user)
    assert s_best > 0.2 and s_worst < 0.01
    rng = np.random.default_rng(0)
    viewed = [world.react(user, np.array([worst, best]), rng)[0] for _ in range(400)]
    assert viewed.count(best) / len(viewed) > 0.95


def test_funnel_follows_the_generator_probabilities(world):
    user = int(np.argmax(world.population.activity))
    best, _, s_best, _ = best_and_worst(world, user)
    rng = np.random.default_rng(1)
    n = 4000
    clicks = sum("click" in world.react(user, np.array([best]), rng)[1] for _ in range(n))
    p = behaviour.FUNNEL_BASE[0] + behaviour.FUNNEL_SLOPE[0] * s_best
    assert abs(clicks / n - p) < 4 * np.sqrt(p * (1 - p) / n)  # within four standard errors


def test_leads_off_the_market_are_never_viewed(world):
    off = np.flatnonzero(world.catalogue.available_until == 0)
    assert len(off)
    assert world.react(0, off[:5], np.random.default_rng(2)) == (-1, [])


def test_metro_shift_moves_the_busiest_metro(world):
    s = scenarios.build("metro-shift", 10.0, world, seed=3)
    before, after = world.population, s.world.population
    moved = np.flatnonzero(before.group_code != after.group_code)
    assert len(moved) == np.sum(before.group_code == before.group_code[moved[0]])
    target = after.group_code[moved[0]]
    leads = np.flatnonzero(world.catalogue.group_code == target)
    d = behaviour.distance_km(
        after.home_latitude[moved][:, None],
        after.home_longitude[moved][:, None],
        world.catalogue.latitude[leads][None, :],
        world.catalogue.longitude[leads][None, :],
    ).min(axis=1)
    assert np.median(d) < 5.0  # the movers now live among the target metro's leads
    unmoved = np.setdiff1d(np.arange(len(before.budget)), moved)
    assert np.array_equal(before.budget[unmoved], after.budget[unmoved])


def test_budget_shift_and_skew(world):
    budget = scenarios.build("budget-shift", 0, world, seed=0).world.population.budget
    assert np.allclose(budget, world.population.budget * scenarios.BUDGET_FACTOR)
    skew = scenarios.build("skew-location", 0, world, seed=0)
    assert skew.world is world and skew.fixed_location is not None
    lat, lon = skew.fixed_location
    d = behaviour.distance_km(
        world.population.home_latitude, world.population.home_longitude, lat, lon
    )
    assert np.median(d) > 100  # most users live far from the one location the client sends


@pytest.mark.parametrize(
    ("text", "expected"),
    [("metro-shift", ("metro-shift", 0.0)), ("new-users@30", ("new-users", 30.0))],
)
def test_scenario_option(text, expected):
    assert scenarios.parse_scenario(text) == expected


@pytest.mark.parametrize("text", ["alien-invasion", "metro-shift@soon", "budget-shift@-1"])
def test_bad_scenario_option_is_one_clear_error(text):
    with pytest.raises(ConfigError):
        scenarios.parse_scenario(text)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080", "http://localhost:1/", "http://[::1]:80"])
def test_loopback_urls_are_accepted(url):
    assert check_loopback(url) == url.rstrip("/")


@pytest.mark.parametrize("url", ["http://10.1.2.3:80", "ftp://127.0.0.1", "127.0.0.1:8080"])
def test_other_urls_are_refused(url):
    with pytest.raises(ConfigError):
        check_loopback(url)
