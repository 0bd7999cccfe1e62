"""UCI "Restaurant & consumer data": places as leads, consumers as users with their own
coordinates, ratings as events.

Mapping (also in docs/data.md):
- place -> lead: region = the nearest of the three city centres the data covers (San Luis
  Potosi, Cuernavaca, Ciudad Victoria; the source's city text is inconsistent), property
  type = the place's first cuisine in chefmozcuisine.csv (lower-cased, ``restaurant`` when it
  has none), price = the price band as a number (low 1, medium 2, high 3; currency "band"),
  no bedrooms, bathrooms or living area, listed on the first day, status ``active``;
- rating -> one event: 0 -> ``view``, 1 -> ``click``, 2 -> ``inquiry``; no purchases;
- the source has no timestamps: ratings are put in a seeded random order and spread evenly
  over `DAYS` days from `START`, with seeded times of day, so the same seed gives the same
  data set; event ids follow that order;
- market per region per day: demand = events on its places that day, inventory = its
  places, median_price = their median band, price_trend = 0 (bands do not change).
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

SOURCE_DIR = "uci_restaurant"
SOURCE_FILES = ("geoplaces2.csv", "userprofile.csv", "rating_final.csv", "chefmozcuisine.csv")
ATTRIBUTION = (
    '"Restaurant & consumer data", UCI Machine Learning Repository, DOI 10.24432/C5DP41 '
    "(Vargas-Govea et al., 2011); CC BY 4.0"
)
START = dt.date(2012, 1, 1)
DAYS = 30
PRICE_BANDS = {"low": 1.0, "medium": 2.0, "high": 3.0}
RATING_EVENTS = {0: "view", 1: "click", 2: "inquiry"}
CITIES = (
    ("san-luis-potosi", 22.1565, -100.9855),
    ("cuernavaca", 18.9242, -99.2216),
    ("ciudad-victoria", 23.7369, -99.1411),
)


def nearest_city(lat: NDArray[np.float64], lon: NDArray[np.float64]) -> NDArray[np.object_]:
    """The name of the nearest city centre for each point."""
    d = np.stack([behaviour.distance_km(lat, lon, c_lat, c_lon) for _, c_lat, c_lon in CITIES])
    nearest: NDArray[np.object_] = np.asarray([c[0] for c in CITIES], dtype=object)[
        np.argmin(d, axis=0)
    ]
    return nearest


def build(folder: pathlib.Path, seed: int) -> Imported:
    p_path, u_path, r_path, c_path = (folder / f for f in SOURCE_FILES)
    places = read_source_csv(p_path, dtype={"placeID": str, "price": str})
    require_columns(places, ["placeID", "latitude", "longitude", "price"], p_path)
    profiles = read_source_csv(u_path, dtype={"userID": str})
    require_columns(profiles, ["userID", "latitude", "longitude"], u_path)
    ratings = read_source_csv(r_path, dtype={"userID": str, "placeID": str})
    require_columns(ratings, ["userID", "placeID", "rating"], r_path)
    cuisine = read_source_csv(c_path, dtype={"placeID": str, "Rcuisine": str})
    require_columns(cuisine, ["placeID", "Rcuisine"], c_path)

    first_cuisine = cuisine.drop_duplicates("placeID").set_index("placeID")["Rcuisine"]
    kind = (
        places["placeID"].map(first_cuisine).fillna("restaurant").str.lower().str.replace(" ", "_")
    )
    lat, lon = places["latitude"].to_numpy(float), places["longitude"].to_numpy(float)
    start_text = START.isoformat()
    leads = (
        pd.DataFrame(
            {
                contracts.LEAD_ID: places["placeID"],
                contracts.LATITUDE: places["latitude"],
                contracts.LONGITUDE: places["longitude"],
                contracts.REGION: nearest_city(lat, lon),
                contracts.PROPERTY_TYPE: kind,
                contracts.PRICE: places["price"].map(PRICE_BANDS),
                contracts.BEDROOMS: pd.array([pd.NA] * len(places), dtype="Int64"),
                contracts.BATHROOMS: np.nan,
                contracts.LIVING_AREA: np.nan,
                contracts.LISTED_DATE: start_text,
                contracts.STATUS: "active",
            }
        )
        .sort_values(contracts.LEAD_ID, kind="stable")
        .reset_index(drop=True)
    )
    users = (
        pd.DataFrame(
            {
                contracts.USER_ID: profiles["userID"],
                contracts.HOME_LATITUDE: profiles["latitude"],
                contracts.HOME_LONGITUDE: profiles["longitude"],
                contracts.SIGNUP_DATE: start_text,
            }
        )
        .sort_values(contracts.USER_ID, kind="stable")
        .reset_index(drop=True)
    )

    rng = np.random.default_rng([seed, 3])
    ratings = ratings.sort_values(["userID", "placeID"], kind="stable").reset_index(drop=True)
    order = rng.permutation(len(ratings))
    n = len(ratings)
    day = np.arange(n) * DAYS // n
    second = rng.integers(0, behaviour.SECONDS_PER_DAY, n)
    seconds = day * behaviour.SECONDS_PER_DAY + _sorted_within(day, second)
    picked = ratings.iloc[order].reset_index(drop=True)
    events = pd.DataFrame(
        {
            contracts.EVENT_ID: spans.make_ids("uci", n, 5),
            contracts.USER_ID: picked["userID"],
            contracts.LEAD_ID: picked["placeID"],
            contracts.EVENT_TYPE: picked["rating"].map(RATING_EVENTS),
            contracts.TIMESTAMP: spans.format_timestamps(START, seconds),
            contracts.REQUEST_ID: "",
        }
    )
    market = _market(leads, events, day)
    manifest = {
        "name": "uci-restaurant",
        "source": "UCI Restaurant & consumer data (places, consumers, ratings)",
        "attribution": ATTRIBUTION,
        "licence": "CC BY 4.0",
        "currency": "price band (low 1, medium 2, high 3)",
        "seed": seed,
        "notes": "ratings 0/1/2 are view/click/inquiry events in a seeded order over "
        f"{DAYS} days from {start_text}; regions are the nearest city centre",
    }
    return Imported(
        leads, users, events, market, manifest, [START + dt.timedelta(days=d) for d in range(DAYS)]
    )


def _sorted_within(day: NDArray[np.int64], second: NDArray[np.int64]) -> NDArray[np.int64]:
    """Times of day increasing within each day (so the event order is the seeded order)."""
    out = np.empty_like(second)
    for d in np.unique(day):
        mask = day == d
        out[mask] = np.sort(second[mask])
    return out


def _market(leads: pd.DataFrame, events: pd.DataFrame, day: NDArray[np.int64]) -> pd.DataFrame:
    regions = sorted(leads[contracts.REGION].unique())
    region_of = dict(zip(leads[contracts.LEAD_ID], leads[contracts.REGION], strict=True))
    event_region = np.searchsorted(regions, events[contracts.LEAD_ID].map(region_of).to_numpy())
    demand = np.bincount(day * len(regions) + event_region, minlength=DAYS * len(regions))
    inventory = leads[contracts.REGION].value_counts()
    median = leads.groupby(contracts.REGION)[contracts.PRICE].median()
    rows = [
        (
            r,
            (START + dt.timedelta(days=d)).isoformat(),
            float(demand[d * len(regions) + i]),
            float(median[r]),
            int(inventory[r]),
            0.0,
        )
        for d in range(DAYS)
        for i, r in enumerate(regions)
    ]
    return market_frame(rows)
