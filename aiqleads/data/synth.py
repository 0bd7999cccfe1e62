"""The synthetic data set: metros, leads, users with hidden preferences, events and market.

Five metro areas around real city-centre coordinates, each with neighbourhoods (the market
regions) where leads cluster. A lead's price depends on its metro, its distance to the centre,
its size and type, and the region's price index on the day it is listed. Users have a hidden
home point and radius, a budget and preferred types (written to ``ground_truth/``) and act
through the funnel model of `aiqleads.data.synth_behaviour`. Same config, same bytes.

Drift scenarios change only the last ``drift_days`` days; the spans before are byte-identical
to the same config without drift.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from aiqleads import contracts, layout
from aiqleads.data import io, spans
from aiqleads.data import synth_behaviour as behaviour
from aiqleads.data import synth_market as market
from aiqleads.data.synth_world import (
    DRIFT_SCENARIOS,
    MEAN_DAYS_ON_MARKET,
    METROS,
    NEIGHBOURHOODS_PER_METRO,
    PRE_LISTED_DAYS,
    PRESETS,
    PROPERTY_TYPES,
    TYPE_AREA_M2,
    TYPE_PRICE_FACTOR,
    SynthConfig,
    World,
    preset,
)

# The generator's interface: ``generate(preset(name, ...), out)``; the config types are
# defined in `aiqleads.data.synth_world` and offered here too.
__all__ = [
    "DRIFT_SCENARIOS",
    "PRESETS",
    "SynthConfig",
    "SynthSummary",
    "build_world",
    "generate",
    "preset",
]

SOURCE = "synthetic (aiqleads.data.synth)"


@dataclasses.dataclass
class SynthSummary:
    out: pathlib.Path
    rows: dict[str, int]
    event_mix: dict[str, int]
    spans: list[str]
    seconds: float
    drift: dict[str, Any] | None


@dataclasses.dataclass(frozen=True)
class _RegionGeo:
    """Where the regions are and how popular each is in its metro: what places leads and users."""

    metro: NDArray[np.int64]
    lat: NDArray[np.float64]
    lon: NDArray[np.float64]
    popularity: NDArray[np.float64]


def _offsets_km(
    rng: np.random.Generator, lat: NDArray[np.float64], sd_km: float, size: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    dlat = rng.normal(0.0, sd_km, size) / behaviour.EARTH_KM_PER_DEGREE
    dlon = rng.normal(0.0, sd_km, size) / (behaviour.EARTH_KM_PER_DEGREE * np.cos(np.radians(lat)))
    return dlat, dlon


def _regions(
    rng: np.random.Generator,
) -> tuple[
    list[str],
    NDArray[np.int64],
    NDArray[np.float64],
    NDArray[np.float64],
    NDArray[np.float64],
    NDArray[np.float64],
]:
    n = len(METROS) * NEIGHBOURHOODS_PER_METRO
    metro = np.repeat(np.arange(len(METROS)), NEIGHBOURHOODS_PER_METRO)
    angle = rng.uniform(0, 2 * np.pi, n)
    radius = 1.5 + 18.0 * rng.random(n) ** 1.3
    c_lat = np.array([m.latitude for m in METROS])[metro]
    c_lon = np.array([m.longitude for m in METROS])[metro]
    lat = c_lat + radius * np.sin(angle) / behaviour.EARTH_KM_PER_DEGREE
    lon = c_lon + radius * np.cos(angle) / (
        behaviour.EARTH_KM_PER_DEGREE * np.cos(np.radians(c_lat))
    )
    popularity = rng.dirichlet(np.ones(NEIGHBOURHOODS_PER_METRO) * 2.0, size=len(METROS)).ravel()
    level = np.exp(rng.normal(0.0, 0.15, n))
    names = [
        f"{METROS[m].name}-{i % NEIGHBOURHOODS_PER_METRO + 1:02d}" for i, m in enumerate(metro)
    ]
    return names, metro, lat, lon, popularity, level


def _pick_regions(
    rng: np.random.Generator,
    metro_of_region: NDArray[np.int64],
    popularity: NDArray[np.float64],
    size: int,
) -> NDArray[np.int64]:
    metro = rng.choice(len(METROS), size=size, p=[m.share for m in METROS])
    u = rng.random(size)
    per_metro = popularity.reshape(len(METROS), NEIGHBOURHOODS_PER_METRO)
    cdf = np.cumsum(per_metro / per_metro.sum(axis=1, keepdims=True), axis=1)
    nb = np.minimum((u[:, None] > cdf[metro]).sum(axis=1), NEIGHBOURHOODS_PER_METRO - 1)
    region: NDArray[np.int64] = metro * NEIGHBOURHOODS_PER_METRO + nb
    return region


def _place(
    rng: np.random.Generator, geo: _RegionGeo, n: int, sd_km: float
) -> tuple[
    NDArray[np.int64],
    NDArray[np.int64],
    NDArray[np.float64],
    NDArray[np.float64],
    NDArray[np.float64],
]:
    """``n`` points, each in a region drawn by popularity at a normal offset of ``sd_km`` from
    its centre: the region, the metro, latitude, longitude and the distance to the metro's
    centre (km)."""
    region = _pick_regions(rng, geo.metro, geo.popularity, n)
    metro = geo.metro[region]
    dlat, dlon = _offsets_km(rng, geo.lat[region], sd_km, n)
    lat, lon = geo.lat[region] + dlat, geo.lon[region] + dlon
    centre_lat = np.array([m.latitude for m in METROS])[metro]
    centre_lon = np.array([m.longitude for m in METROS])[metro]
    d_centre = behaviour.distance_km(lat, lon, centre_lat, centre_lon)
    return region, metro, lat, lon, d_centre


def build_world(config: SynthConfig) -> World:
    """Draw regions, leads, users and the drift hooks for ``config``."""
    root = np.random.SeedSequence(config.seed)
    s_regions, s_leads, s_users, s_index, s_drift, _ = root.spawn(6)
    rng = np.random.default_rng(s_regions)
    names, region_metro, r_lat, r_lon, popularity, level = _regions(rng)
    n_regions = len(names)
    index = market.price_index(
        np.random.default_rng(s_index), n_regions, PRE_LISTED_DAYS, config.days
    )

    geo = _RegionGeo(region_metro, r_lat, r_lon, popularity)
    leads, cat, base_value = _leads(config, np.random.default_rng(s_leads), geo, level, index)
    users, truth, pop = _users(config, np.random.default_rng(s_users), geo)
    drift_info, hooks = None, behaviour.DriftHooks()
    if config.drift:
        leads, cat, base_value, index, names, region_metro, hooks, drift_info = market.apply_drift(
            config,
            np.random.default_rng(s_drift),
            leads,
            cat,
            base_value,
            index,
            names,
            region_metro,
        )
    return World(
        names, region_metro, index, cat, base_value, leads, users, truth, pop, hooks, drift_info
    )


def _leads(
    config: SynthConfig,
    rng: np.random.Generator,
    geo: _RegionGeo,
    level: NDArray[np.float64],
    index: NDArray[np.float64],
) -> tuple[pd.DataFrame, behaviour.Catalogue, NDArray[np.float64]]:
    n = config.leads
    region, metro, lat, lon, d_centre = _place(rng, geo, n, 0.9)
    logits = np.stack(
        [0.03 * d_centre, 1.2 - 0.08 * d_centre, np.full(n, 0.3), np.full(n, -0.8)], axis=1
    )
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    ptype = np.minimum(
        (rng.random(n)[:, None] > np.cumsum(p, axis=1)).sum(axis=1), len(PROPERTY_TYPES) - 1
    )
    area = np.round(TYPE_AREA_M2[ptype] * np.exp(rng.normal(0, 0.3, n)), 1)
    bedrooms = np.clip(np.round(area / 40.0 + rng.normal(0, 0.6, n)), 0, 10).astype(int)
    bathrooms = np.clip(np.round((bedrooms * 0.6 + rng.normal(0, 0.4, n)) * 2) / 2, 1, 8)
    pre = rng.random(n) < 0.45
    listed = np.where(
        pre, -rng.integers(1, PRE_LISTED_DAYS + 1, n), rng.integers(0, config.days, n)
    )
    on_market = 1 + rng.exponential(MEAN_DAYS_ON_MARKET, n).astype(np.int64)
    withdrawn = rng.random(n) < 0.03
    ppm2 = np.array([m.price_per_m2 for m in METROS])[metro]
    base_value = (
        ppm2
        * area
        * TYPE_PRICE_FACTOR[ptype]
        * (0.55 + 0.45 * np.exp(-d_centre / 10.0))
        * level[region]
        * np.exp(rng.normal(0, 0.12, n))
    )
    until = listed + on_market
    price = np.round(base_value * index[region, listed + PRE_LISTED_DAYS] / 100.0) * 100.0
    status = np.where(
        until <= config.days, "sold", np.where(until <= config.days + 10, "pending", "active")
    )
    status = np.where(withdrawn & (until > config.days), "withdrawn", status)
    until = np.where(withdrawn & (until > config.days), config.days - rng.integers(0, 3, n), until)
    until = np.maximum(until, listed + 1)
    ids = spans.make_ids("l", n)
    frame = pd.DataFrame(
        {
            contracts.LEAD_ID: ids,
            contracts.LATITUDE: np.round(lat, 6),
            contracts.LONGITUDE: np.round(lon, 6),
            contracts.REGION: "",  # named at write time (drift may add a region)
            contracts.PROPERTY_TYPE: np.asarray(PROPERTY_TYPES, dtype=object)[ptype],
            contracts.PRICE: price,
            contracts.BEDROOMS: bedrooms,
            contracts.BATHROOMS: bathrooms,
            contracts.LIVING_AREA: area,
            contracts.LISTED_DATE: spans.format_dates(config.start_date, listed),
            contracts.STATUS: status.astype(object),
        }
    )
    cat = behaviour.Catalogue(lat, lon, price, ptype, region, metro, listed, until)
    return frame, cat, base_value


def _users(
    config: SynthConfig, rng: np.random.Generator, geo: _RegionGeo
) -> tuple[pd.DataFrame, pd.DataFrame, behaviour.Population]:
    n = config.users
    home_region, metro, lat, lon, d_centre = _place(rng, geo, n, 2.5)
    radius = np.round(np.clip(np.exp(rng.normal(np.log(4.0), 0.4, n)), 1.0, 20.0), 2)
    ppm2 = np.array([m.price_per_m2 for m in METROS])[metro]
    budget = (
        ppm2 * 150.0 * (0.55 + 0.45 * np.exp(-d_centre / 10.0)) * np.exp(rng.normal(0, 0.35, n))
    )
    budget = np.round(budget / 1000.0) * 1000.0
    # One or two preferred types; city-centre users lean to condos.
    n_types = len(PROPERTY_TYPES)
    first = np.where(rng.random(n) < np.exp(-d_centre / 8.0), 1, rng.integers(0, n_types, n))
    second = np.where(rng.random(n) < 0.5, rng.integers(0, n_types, n), first)
    affinity = np.full((n, n_types), behaviour.OTHER_TYPE_AFFINITY)
    affinity[np.arange(n), first] = 1.0
    affinity[np.arange(n), second] = 1.0
    rank = rng.permutation(n) + 1
    activity = (rank + 10.0) ** -0.8
    signup = np.where(
        rng.random(n) < 0.6, -rng.integers(1, 366, n), rng.integers(0, config.days, n)
    )
    shown = rng.random(n) < 0.75
    jlat, jlon = _offsets_km(rng, lat, 0.5, n)
    ids = spans.make_ids("u", n)
    users = pd.DataFrame(
        {
            contracts.USER_ID: ids,
            contracts.HOME_LATITUDE: np.where(shown, np.round(lat + jlat, 5), np.nan),
            contracts.HOME_LONGITUDE: np.where(shown, np.round(lon + jlon, 5), np.nan),
            contracts.SIGNUP_DATE: spans.format_dates(config.start_date, signup),
        }
    )
    preferred = np.asarray(PROPERTY_TYPES, dtype=object)
    truth = pd.DataFrame(
        {
            contracts.USER_ID: ids,
            "metro": np.array([m.name for m in METROS], dtype=object)[metro],
            "home_region_code": home_region,
            contracts.HOME_LATITUDE: np.round(lat, 6),
            contracts.HOME_LONGITUDE: np.round(lon, 6),
            "radius_km": radius,
            "budget": budget,
            "preferred_types": ["|".join(preferred[affinity[i] == 1.0]) for i in range(n)],
            "activity_weight": np.round(activity / activity.sum(), 8),
        }
    )
    pop = behaviour.Population(
        lat, lon, radius, budget, affinity, home_region, metro, activity, np.maximum(signup, 0)
    )
    return users, truth, pop


def generate(
    config: SynthConfig,
    out: pathlib.Path,
    overwrite: bool = False,
    progress: Callable[[str], None] | None = None,
) -> SynthSummary:
    """Generate the data set described by ``config`` into ``out``; returns a summary."""
    started = time.perf_counter()
    config = config.validated()
    say = progress or (lambda _msg: None)
    out = io.prepare_output_dir(pathlib.Path(out), overwrite)
    say(f"world: {len(METROS)} metros, {config.leads} leads, {config.users} users")
    world = build_world(config)
    views = behaviour.expected_views(config.target_events)
    say(f"behaviour: simulating {views:,} views over {config.days} days")
    seed_events = np.random.SeedSequence(config.seed).spawn(6)[5]
    sim = behaviour.simulate(
        world.population,
        world.catalogue,
        config.days,
        views,
        seed_events,
        world.hooks,
        candidates=config.candidates_per_view,
    )
    names = np.asarray(world.region_names, dtype=object)
    leads = world.leads.assign(**{contracts.REGION: names[world.catalogue.region_code]})
    lead_ids = leads[contracts.LEAD_ID].to_numpy()
    events, event_day = spans.events_frame(
        sim,
        world.users[contracts.USER_ID].to_numpy(),
        lead_ids,
        config.start_date,
        _request_ids(config.seed, views),
    )
    say(f"market: {len(names)} regions x {config.days} days")
    market_rows, market_day = market.market_frame(world, names, config, sim)

    say(f"writing {config.days} daily spans to {out}")
    io.write_table(leads, layout.table_path(out, contracts.LEADS), contracts.LEADS)
    io.write_table(world.users, layout.table_path(out, contracts.USERS), contracts.USERS)
    span_names = spans.write_spans(
        out, config.start_date, range(config.days), events, event_day, market_rows, market_day
    )
    truth_dir = out / layout.GROUND_TRUTH_DIR
    truth = world.ground_truth.assign(
        home_region=names[world.ground_truth.pop("home_region_code").to_numpy()]
    )
    io.atomic_write_csv(truth, _mkdir(truth_dir) / layout.USER_PREFERENCES)
    if world.drift:
        (truth_dir / "drift.json").write_text(
            json.dumps(world.drift, indent=2, sort_keys=True) + "\n"
        )
    rows = {
        "leads": len(leads),
        "users": len(world.users),
        "events": len(events),
        "market": len(market_rows),
    }
    mix = spans.event_mix(events)
    io.write_manifest(out, _manifest(config, span_names, rows, mix, world.drift))
    return SynthSummary(out, rows, mix, span_names, time.perf_counter() - started, world.drift)


def _mkdir(path: pathlib.Path) -> pathlib.Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _request_ids(seed: int, views: int) -> NDArray[np.object_]:
    """Opaque, seeded request ids (one per view; only some views carry theirs)."""
    rng = np.random.default_rng([seed, 7])
    raw = rng.integers(0, 2**48, size=views, dtype=np.int64)
    return np.array([f"rq-{r:012x}" for r in raw.tolist()], dtype=object)


def _manifest(
    config: SynthConfig,
    span_names: list[str],
    rows: dict[str, int],
    mix: dict[str, int],
    drift: dict[str, Any] | None,
) -> dict[str, Any]:
    settings = dataclasses.asdict(config)
    settings["start_date"] = config.start_date.isoformat()
    settings["events"] = config.target_events
    return {
        "name": config.name,
        "source": SOURCE,
        "attribution": "Synthetic data generated by AIQLeads; city-centre coordinates are public facts.",
        "currency": "USD",
        "seed": config.seed,
        "config": settings,
        "spans": {"first": span_names[0], "last": span_names[-1], "count": len(span_names)},
        "rows": rows,
        "event_mix": mix,
        "drift": drift,
        "metros": [m.name for m in METROS],
        "property_types": list(PROPERTY_TYPES),
        "ground_truth": f"{layout.GROUND_TRUTH_DIR}/{layout.USER_PREFERENCES}",
    }
