"""King County house sales (Seattle area, 2014-05 .. 2015-05) as leads, real weekly market
data per zip code, and simulated users acting on the real leads.

Mapping (also in docs/data.md):
- each sale is a lead: id ``<house id>-<sale yyyymmdd>`` (a house sold twice is two leads),
  zip code as region, sqft -> m2, the sale date as ``listed_date``;
- the source has no property type: ``waterfront`` when the waterfront flag is set, else
  ``townhouse`` for a lot under 2,500 sqft with 2+ floors, else ``house``;
- a lead is on the market for `DAYS_ON_MARKET` days from its listed date; as of the data
  set's last day it is ``active`` if still on the market, else ``sold``;
- market, one row per zip code per week (weeks end on Sunday, the row sits in that day's
  span): demand = sales that week, median_price = median sale price that week (empty when no
  sale), inventory = leads on the market that day, price_trend = median sale price of the
  last 4 weeks over the 4 weeks before, minus 1 (0 when either is empty);
- users are simulated with the synthetic set's behaviour model: each user's hidden home is
  near a random real lead, the budget near that lead's price.
"""

from __future__ import annotations

import datetime as dt
import pathlib

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from aiqleads import contracts
from aiqleads.data import spans
from aiqleads.data import synth_behaviour as behaviour
from aiqleads.data.adapters import Imported, market_frame, read_source_csv, require_columns

SOURCE_DIR = "king_county_sales"
SOURCE_FILES = ("kc_house_data.csv",)
ATTRIBUTION = (
    '"House Sales in King County, USA" (Kaggle, harlfoxem), via the GitHub repository '
    "GustavoMichelsen/house_rocket; CC0 (public domain)"
)
SQFT_TO_M2 = 0.09290304
DAYS_ON_MARKET = 45
TREND_WEEKS = 4
USERS = 3_000
EVENTS = 100_000
TYPES = ("house", "townhouse", "waterfront")
COLUMNS = [
    "id",
    "date",
    "price",
    "bedrooms",
    "bathrooms",
    "sqft_living",
    "sqft_lot",
    "floors",
    "waterfront",
    "zipcode",
    "lat",
    "long",
]


def build(folder: pathlib.Path, seed: int, users: int = USERS, events: int = EVENTS) -> Imported:
    path = folder / SOURCE_FILES[0]
    src = read_source_csv(path, dtype={"id": str, "date": str, "zipcode": str})
    require_columns(src, COLUMNS, path)
    sale = pd.to_datetime(src["date"].str.slice(0, 8), format="%Y%m%d").dt.date
    start = sale.min()
    end = _week_end(sale.max())
    days = (end - start).days + 1
    sale_day = np.array([(d - start).days for d in sale], dtype=np.int64)
    ptype = np.where(
        src["waterfront"] == 1, 2, np.where((src["sqft_lot"] < 2_500) & (src["floors"] >= 2), 1, 0)
    )
    until = sale_day + DAYS_ON_MARKET
    zips = sorted(src["zipcode"].unique())
    region = np.searchsorted(zips, src["zipcode"].to_numpy())
    leads = pd.DataFrame(
        {
            contracts.LEAD_ID: (src["id"] + "-" + src["date"].str.slice(0, 8)).to_numpy(object),
            contracts.LATITUDE: src["lat"].round(6),
            contracts.LONGITUDE: src["long"].round(6),
            contracts.REGION: src["zipcode"],
            contracts.PROPERTY_TYPE: np.asarray(TYPES, dtype=object)[ptype],
            contracts.PRICE: src["price"].astype(float),
            contracts.BEDROOMS: src["bedrooms"].astype(int),
            contracts.BATHROOMS: src["bathrooms"].astype(float),
            contracts.LIVING_AREA: (src["sqft_living"] * SQFT_TO_M2).round(1),
            contracts.LISTED_DATE: [d.isoformat() for d in sale],
            contracts.STATUS: np.where(until > days - 1, "active", "sold").astype(object),
        }
    )
    cat = behaviour.Catalogue(
        src["lat"].to_numpy(float),
        src["long"].to_numpy(float),
        src["price"].to_numpy(float),
        ptype,
        region,
        np.zeros(len(src), dtype=np.int64),
        sale_day,
        until,
    )
    users_frame, pop = _users(np.random.default_rng([seed, 1]), cat, users, days, start)
    sim = behaviour.simulate(
        pop, cat, days, behaviour.expected_views(events), np.random.SeedSequence([seed, 2]), None
    )
    user_ids = users_frame[contracts.USER_ID].to_numpy()
    events_frame, _ = spans.events_frame(sim, user_ids, leads[contracts.LEAD_ID].to_numpy(), start)
    market = _market(src, sale, sale_day, start, end)
    manifest = {
        "name": "kingcounty",
        "source": "King County house sales 2014-2015 (real leads and market; simulated users)",
        "attribution": ATTRIBUTION,
        "licence": "CC0",
        "currency": "USD",
        "seed": seed,
        "simulated": {"users": users, "events_target": events, "days_on_market": DAYS_ON_MARKET},
        "property_types": "waterfront if the waterfront flag is set; townhouse if lot < 2500 sqft and 2+ floors; else house",
    }
    span_days = [start + dt.timedelta(days=d) for d in range(days)]
    return Imported(leads, users_frame, events_frame, market, manifest, span_days)


def _week_end(day: dt.date) -> dt.date:
    return day + dt.timedelta(days=6 - day.weekday())


def _users(
    rng: np.random.Generator, cat: behaviour.Catalogue, n: int, days: int, start: dt.date
) -> tuple[pd.DataFrame, behaviour.Population]:
    anchor = rng.integers(0, len(cat), n)
    lat0 = cat.latitude[anchor]
    dlat = rng.normal(0, 2.0, n) / behaviour.EARTH_KM_PER_DEGREE
    dlon = rng.normal(0, 2.0, n) / (behaviour.EARTH_KM_PER_DEGREE * np.cos(np.radians(lat0)))
    lat, lon = lat0 + dlat, cat.longitude[anchor] + dlon
    radius = np.clip(np.exp(rng.normal(np.log(5.0), 0.4, n)), 1.0, 25.0)
    budget = cat.price[anchor] * np.exp(rng.normal(0, 0.35, n))
    affinity = np.full((n, len(TYPES)), behaviour.OTHER_TYPE_AFFINITY)
    affinity[np.arange(n), rng.choice(len(TYPES), size=n, p=[0.8, 0.15, 0.05])] = 1.0
    activity = (rng.permutation(n) + 11.0) ** -0.8
    signup = np.where(rng.random(n) < 0.5, -rng.integers(1, 366, n), rng.integers(0, days, n))
    shown = rng.random(n) < 0.75
    pop = behaviour.Population(
        lat,
        lon,
        radius,
        budget,
        affinity,
        cat.region_code[anchor],
        np.zeros(n, dtype=np.int64),
        activity,
        np.maximum(signup, 0),
    )
    frame = pd.DataFrame(
        {
            contracts.USER_ID: spans.make_ids("kcu", n),
            contracts.HOME_LATITUDE: np.where(
                shown, np.round(lat + rng.normal(0, 0.004, n), 5), np.nan
            ),
            contracts.HOME_LONGITUDE: np.where(
                shown, np.round(lon + rng.normal(0, 0.006, n), 5), np.nan
            ),
            contracts.SIGNUP_DATE: spans.format_dates(start, signup),
        }
    )
    return frame, pop


def _market(
    src: pd.DataFrame, sale: pd.Series, sale_day: NDArray[np.int64], start: dt.date, end: dt.date
) -> pd.DataFrame:
    week_end = np.array([(_week_end(d) - start).days for d in sale], dtype=np.int64)
    zips = sorted(src["zipcode"].unique())
    weeks = np.arange((_week_end(start) - start).days, (end - start).days + 1, 7)
    price = src["price"].to_numpy(float)
    rows = []
    for z in zips:
        mask = (src["zipcode"] == z).to_numpy()
        p, wk, sd = price[mask], week_end[mask], sale_day[mask]
        medians = {w: np.median(p[wk == w]) if (wk == w).any() else np.nan for w in weeks}
        for w in weeks:
            recent = p[(wk > w - 7 * TREND_WEEKS) & (wk <= w)]
            before = p[(wk > w - 14 * TREND_WEEKS) & (wk <= w - 7 * TREND_WEEKS)]
            trend = (
                np.median(recent) / np.median(before) - 1.0 if len(recent) and len(before) else 0.0
            )
            rows.append(
                (
                    z,
                    w,
                    float((wk == w).sum()),
                    medians[w],
                    int(((sd <= w) & (w < sd + DAYS_ON_MARKET)).sum()),
                    round(float(np.clip(trend, -1.0, 10.0)), 4),
                )
            )
    frame = market_frame(rows)  # dates as day numbers from `start` until sorted
    frame[contracts.MEDIAN_PRICE] = frame[contracts.MEDIAN_PRICE].round(1)
    frame = frame.sort_values([contracts.DATE, contracts.REGION], kind="stable")
    frame = frame.reset_index(drop=True)
    frame[contracts.DATE] = spans.format_dates(start, frame[contracts.DATE].to_numpy())
    return frame
