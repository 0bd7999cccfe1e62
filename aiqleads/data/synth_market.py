"""Regional price indices, daily market rows and drift scenarios of the synthetic data set."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from aiqleads import contracts
from aiqleads.data import spans
from aiqleads.data import synth_behaviour as behaviour
from aiqleads.data.synth_world import (
    EVENT_MIX_SCALE,
    HOTSPOT_SHARE,
    INFLATION,
    METROS,
    NEIGHBOURHOODS_PER_METRO,
    PRE_LISTED_DAYS,
    PROPERTY_TYPES,
    TYPE_AREA_M2,
    TYPE_PRICE_FACTOR,
    SynthConfig,
    World,
)

TREND_WINDOW_DAYS = 7


def price_index(
    rng: np.random.Generator, n_regions: int, pre_days: int, days: int
) -> NDArray[np.float64]:
    """Per-region price index for days ``-pre_days .. days-1`` (column 0 is ``-pre_days``),
    1.0 on day 0: a regional trend plus a random walk."""
    trend = rng.normal(0.0002, 0.0005, (n_regions, 1))
    steps = rng.normal(0.0, 0.002, (n_regions, pre_days + days))
    log_index = np.cumsum(steps + trend, axis=1)
    index: NDArray[np.float64] = np.exp(log_index - log_index[:, [pre_days]])
    return index


def _reprice(
    base_value: NDArray[np.float64],
    index: NDArray[np.float64],
    region: NDArray[np.int64],
    listed: NDArray[np.int64],
    pre: int,
) -> NDArray[np.float64]:
    price: NDArray[np.float64] = np.round(base_value * index[region, listed + pre] / 100.0) * 100.0
    return price


@dataclasses.dataclass(frozen=True)
class Market:
    """The parts of a world a drift scenario may change."""

    leads: pd.DataFrame
    catalogue: behaviour.Catalogue
    base_value: NDArray[np.float64]
    price_index: NDArray[np.float64]
    region_names: list[str]
    region_metro: NDArray[np.int64]


def apply_drift(
    config: SynthConfig,
    rng: np.random.Generator,
    leads: pd.DataFrame,
    cat: behaviour.Catalogue,
    base_value: NDArray[np.float64],
    index: NDArray[np.float64],
    names: list[str],
    region_metro: NDArray[np.int64],
) -> tuple[
    pd.DataFrame,
    behaviour.Catalogue,
    NDArray[np.float64],
    NDArray[np.float64],
    list[str],
    NDArray[np.int64],
    behaviour.DriftHooks,
    dict[str, Any],
]:
    """Apply ``config.drift`` from day ``config.drift_start`` on; returns the changed world
    parts and a description written to ``ground_truth/drift.json`` and the manifest."""
    start = config.drift_start
    pre = PRE_LISTED_DAYS
    first_day = (config.start_date + _days(start)).isoformat()
    info: dict[str, Any] = {
        "scenario": config.drift,
        "first_day": first_day,
        "days": config.drift_days,
    }
    hooks = behaviour.DriftHooks()
    names = list(names)
    if config.drift == "price_inflation":
        counts = np.bincount(cat.region_code[cat.group_code == 0], minlength=len(names))
        region = int(np.argmax(counts))
        index = index.copy()
        index[region, pre + start :] *= INFLATION
        hit = (cat.region_code == region) & (cat.available_from >= start)
        price = cat.price.copy()
        price[hit] = _reprice(
            base_value[hit], index, cat.region_code[hit], cat.available_from[hit], pre
        )
        leads = leads.assign(**{contracts.PRICE: price})
        cat = dataclasses.replace(cat, price=price)
        info.update(region=names[region], factor=INFLATION)
    elif config.drift == "new_hotspot":
        before = Market(leads, cat, base_value, index, names, region_metro)
        after, hooks, extra = _hotspot(config, rng, before)
        leads, cat, base_value = after.leads, after.catalogue, after.base_value
        index, names, region_metro = after.price_index, after.region_names, after.region_metro
        info.update(extra)
    elif config.drift == "event_mix":
        scale = np.ones((config.days, 3))
        scale[start:] = EVENT_MIX_SCALE
        hooks = behaviour.DriftHooks(funnel_scale=scale)
        info.update(
            funnel_scale=dict(zip(("click", "inquiry", "purchase"), EVENT_MIX_SCALE, strict=True))
        )
    return leads, cat, base_value, index, names, region_metro, hooks, info


def _days(n: int) -> dt.timedelta:
    return dt.timedelta(days=int(n))


def _hotspot(
    config: SynthConfig, rng: np.random.Generator, market: Market
) -> tuple[Market, behaviour.DriftHooks, dict[str, object]]:
    """A new neighbourhood in the first metro, listed on the first drifted day, that draws a
    large share of that metro's views. Its leads belong to no metro for candidate sampling,
    so the days before the drift are unchanged."""
    cat, index, names = market.catalogue, market.price_index, list(market.region_names)
    region_metro = market.region_metro
    metro = METROS[0]
    start = config.drift_start
    n = max(5, config.leads // 20)
    angle, dist = rng.uniform(0, 2 * np.pi), 6.0
    c_lat = metro.latitude + dist * np.sin(angle) / behaviour.EARTH_KM_PER_DEGREE
    c_lon = metro.longitude + dist * np.cos(angle) / (
        behaviour.EARTH_KM_PER_DEGREE * np.cos(np.radians(metro.latitude))
    )
    lat = np.round(c_lat + rng.normal(0, 0.6, n) / behaviour.EARTH_KM_PER_DEGREE, 6)
    lon = np.round(
        c_lon + rng.normal(0, 0.6, n) / (behaviour.EARTH_KM_PER_DEGREE * np.cos(np.radians(c_lat))),
        6,
    )
    ptype = rng.choice([1, 2], size=n)
    area = np.round(TYPE_AREA_M2[ptype] * np.exp(rng.normal(0, 0.25, n)), 1)
    bedrooms = np.clip(np.round(area / 40.0), 0, 10).astype(int)
    value = (
        metro.price_per_m2 * area * TYPE_PRICE_FACTOR[ptype] * 0.9 * np.exp(rng.normal(0, 0.1, n))
    )
    region = len(names)
    names.append(f"{metro.name}-hotspot")
    region_metro = np.append(region_metro, 0)
    index = np.vstack([index, index[region_metro[:-1] == 0].mean(axis=0)])
    listed = np.full(n, start)
    price = _reprice(value, index, np.full(n, region), listed, PRE_LISTED_DAYS)
    ids = np.array([f"l{i:06d}" for i in range(len(cat) + 1, len(cat) + n + 1)], dtype=object)
    new = pd.DataFrame(
        {
            contracts.LEAD_ID: ids,
            contracts.LATITUDE: lat,
            contracts.LONGITUDE: lon,
            contracts.REGION: "",
            contracts.PROPERTY_TYPE: np.asarray(PROPERTY_TYPES, dtype=object)[ptype],
            contracts.PRICE: price,
            contracts.BEDROOMS: bedrooms,
            contracts.BATHROOMS: np.clip(np.round(bedrooms * 0.6 * 2) / 2, 1, 8),
            contracts.LIVING_AREA: area,
            contracts.LISTED_DATE: spans.format_dates(config.start_date, listed),
            contracts.STATUS: "active",
        }
    )
    first = len(cat)
    cat = behaviour.Catalogue(
        np.concatenate([cat.latitude, lat]),
        np.concatenate([cat.longitude, lon]),
        np.concatenate([cat.price, price]),
        np.concatenate([cat.type_code, ptype]),
        np.concatenate([cat.region_code, np.full(n, region)]),
        np.concatenate([cat.group_code, np.full(n, len(METROS))]),
        np.concatenate([cat.available_from, listed]),
        np.concatenate([cat.available_until, np.full(n, config.days + 365)]),
    )
    share = np.where(np.arange(config.days) >= start, HOTSPOT_SHARE, 0.0)
    hooks = behaviour.DriftHooks(
        redirect_share=share, redirect_leads=np.arange(first, first + n), redirect_group=0
    )
    extra = {
        "region": names[region],
        "metro": metro.name,
        "leads": int(n),
        "share_of_metro_views": HOTSPOT_SHARE,
        "latitude": round(float(c_lat), 6),
        "longitude": round(float(c_lon), 6),
    }
    grown = Market(
        pd.concat([market.leads, new], ignore_index=True),
        cat,
        np.concatenate([market.base_value, value]),
        index,
        names,
        region_metro,
    )
    return grown, hooks, extra


def market_frame(
    world: World, names: NDArray[np.object_], config: SynthConfig, sim: behaviour.Events
) -> tuple[pd.DataFrame, NDArray[np.int64]]:
    """Daily market rows per region (demand = events on its leads that day, inventory =
    leads on the market, median_price = median current value of those leads, price_trend =
    change of that median over the trailing week); sorted by day, then region."""
    cat, pre = world.catalogue, PRE_LISTED_DAYS
    n_regions, days = len(names), config.days
    base_regions = len(METROS) * NEIGHBOURHOODS_PER_METRO
    first = -TREND_WINDOW_DAYS
    medians = np.full((days - first, n_regions), np.nan)
    inventory = np.zeros((days - first, n_regions), dtype=np.int64)
    for t in range(first, days):
        on = (cat.available_from <= t) & (t < cat.available_until)
        region = cat.region_code[on]
        value = world.base_value[on] * world.price_index[region, t + pre]
        grouped = pd.Series(value).groupby(region).median()
        medians[t - first, grouped.index.to_numpy()] = grouped.to_numpy()
        inventory[t - first] = np.bincount(region, minlength=n_regions)
    event_day = sim.seconds // behaviour.SECONDS_PER_DAY
    demand = np.bincount(
        event_day * n_regions + cat.region_code[sim.lead], minlength=days * n_regions
    ).reshape(days, n_regions)
    current, earlier = medians[-first:], medians[:days]
    with np.errstate(invalid="ignore", divide="ignore"):
        trend = np.where(np.isfinite(current) & np.isfinite(earlier), current / earlier - 1.0, 0.0)
    day_idx, region_idx = np.meshgrid(np.arange(days), np.arange(n_regions), indexing="ij")
    keep = (region_idx < base_regions) | (inventory[-first:] > 0)
    frame = pd.DataFrame(
        {
            contracts.REGION: names[region_idx[keep]],
            contracts.DATE: spans.format_dates(config.start_date, day_idx[keep]),
            contracts.DEMAND: demand[keep].astype(float),
            contracts.MEDIAN_PRICE: np.round(current[keep] / 100.0) * 100.0,
            contracts.INVENTORY: inventory[-first:][keep],
            contracts.PRICE_TREND: np.round(np.clip(trend[keep], -1.0, 10.0), 4),
        }
    )
    frame["_day"] = day_idx[keep]
    frame = frame.sort_values(["_day", contracts.REGION], kind="stable").reset_index(drop=True)
    return frame.drop(columns="_day"), frame["_day"].to_numpy()
