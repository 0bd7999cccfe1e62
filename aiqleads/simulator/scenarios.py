"""Scenarios: changes of the simulated population that start part-way through a run.

- ``metro-shift``: the users of the busiest metro move to another one: their home, home
  region and budget (scaled by the two metros' median lead prices) follow, so what they
  want is in a place the model did not learn them in;
- ``budget-shift``: every budget grows by half (a market-wide change of what users afford);
- ``new-users``: half of the requests come from users without any event in the data set;
- ``skew-location``: nothing changes about the users, but the client sends one default
  location (the centre of the quietest metro) with every request, as an app does when it
  cannot read the device's location: a training/serving skew.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from aiqleads.errors import ConfigError
from aiqleads.simulator.world import World

SCENARIOS = ("metro-shift", "budget-shift", "new-users", "skew-location")
BUDGET_FACTOR = 1.5
NEW_USER_SHARE = 0.5
HOME_SPREAD_KM = 2.0
KM_PER_DEGREE = 111.195


@dataclasses.dataclass(frozen=True)
class Scenario:
    """The population once the scenario is on, from ``start`` seconds into the run."""

    name: str
    start: float
    world: World
    new_user_share: float = 0.0
    fixed_location: tuple[float, float] | None = None
    description: str = ""


def parse_scenario(text: str) -> tuple[str, float]:
    """``NAME`` or ``NAME@SECONDS`` -> (name, start)."""
    name, _, start = text.partition("@")
    if name not in SCENARIOS:
        raise ConfigError(f"unknown scenario {name!r}: use one of {', '.join(SCENARIOS)}")
    try:
        seconds = float(start) if start else 0.0
    except ValueError as e:
        raise ConfigError(f"scenario start {start!r} is not a number of seconds") from e
    if not 0 <= seconds <= 86_400:
        raise ConfigError(f"scenario start {seconds:g} s is out of range: use 0..86400")
    return name, seconds


def build(name: str, start: float, world: World, seed: int) -> Scenario:
    rng = np.random.default_rng([seed, 11])
    if name == "budget-shift":
        pop = dataclasses.replace(world.population, budget=world.population.budget * BUDGET_FACTOR)
        return Scenario(
            name, start, dataclasses.replace(world, population=pop), description="budgets x1.5"
        )
    if name == "new-users":
        if not world.cold.any():
            raise ConfigError("scenario new-users: every user of this data set has events")
        return Scenario(name, start, world, new_user_share=NEW_USER_SHARE, description="cold users")
    if name == "skew-location":
        pop, cat = world.population, world.catalogue
        activity = np.bincount(pop.group_code, weights=pop.activity, minlength=len(world.metros))
        quiet = int(np.argmin(activity))
        leads = cat.group_code == quiet
        centre = (float(np.median(cat.latitude[leads])), float(np.median(cat.longitude[leads])))
        return Scenario(
            name,
            start,
            world,
            fixed_location=centre,
            description=f"every request located at {world.metros[quiet]}'s centre {centre}",
        )
    return _metro_shift(start, world, rng)


def _metro_shift(start: float, world: World, rng: np.random.Generator) -> Scenario:
    pop, cat = world.population, world.catalogue
    if len(world.metros) < 2:
        raise ConfigError("scenario metro-shift needs a data set with at least two metros")
    activity = np.bincount(pop.group_code, weights=pop.activity, minlength=len(world.metros))
    source = int(np.argmax(activity))
    target = int(np.argsort(-activity)[1])
    movers = np.flatnonzero(pop.group_code == source)
    in_target = np.flatnonzero((cat.group_code == target) & (cat.available_until > 0))
    if not len(in_target):
        raise ConfigError(f"scenario metro-shift: no lead on the market in {world.metros[target]}")
    anchor = rng.choice(in_target, size=len(movers))
    lat = cat.latitude[anchor] + rng.normal(0, HOME_SPREAD_KM / KM_PER_DEGREE, len(movers))
    lon = cat.longitude[anchor] + rng.normal(0, HOME_SPREAD_KM / KM_PER_DEGREE, len(movers))
    prices = cat.price
    ratio = np.nanmedian(prices[cat.group_code == target]) / np.nanmedian(
        prices[cat.group_code == source]
    )
    home_lat, home_lon = pop.home_latitude.copy(), pop.home_longitude.copy()
    home_region, group = pop.home_region.copy(), pop.group_code.copy()
    budget = pop.budget.copy()
    home_lat[movers], home_lon[movers] = lat, lon
    home_region[movers] = cat.region_code[anchor]
    group[movers] = target
    budget[movers] = budget[movers] * ratio
    moved = dataclasses.replace(
        pop,
        home_latitude=home_lat,
        home_longitude=home_lon,
        home_region=home_region,
        group_code=group,
        budget=budget,
    )
    return Scenario(
        "metro-shift",
        start,
        dataclasses.replace(world, population=moved),
        description=(
            f"{len(movers)} users of {world.metros[source]} move to {world.metros[target]}"
        ),
    )
