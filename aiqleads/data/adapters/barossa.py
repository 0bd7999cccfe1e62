"""Inside Airbnb, Barossa Valley (South Australia): listings as leads, reviews as purchase
events, one daily span per day with reviews.

Mapping (also in docs/data.md):
- listing -> lead: neighbourhood as region, property type lower-cased, price text such as
  "$1,254.00" -> 1254.0 (missing kept empty), living area unknown (empty), listed on its first
  review (or the scrape day 2024-07-28 when it has none), status ``active``;
- review -> ``purchase`` event of user ``b<user_id>`` at 12:00:00 UTC on the review date (the
  source has dates only), event id ``rv<review_id>``, no request id;
- user -> ``b<user_id>``, no home coordinates, signed up on the day of their first review;
- market per neighbourhood on each span day: demand = reviews there in the trailing 30 days,
  inventory = listings listed by that day, median_price = their median price, price_trend =
  that median over the one 30 days earlier, minus 1 (0 when either is empty).
"""

from __future__ import annotations

import datetime as dt
import pathlib

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from aiqleads import contracts
from aiqleads.data.adapters import (
    Imported,
    day_numbers,
    market_frame,
    read_source_csv,
    require_columns,
)
from aiqleads.errors import DataError

SOURCE_DIR = "inside_airbnb_barossa"
SOURCE_FILES = ("listings.csv", "reviews.csv")
ATTRIBUTION = "Data from Inside Airbnb, insideairbnb.com, CC BY 4.0; modified"
SCRAPE_DATE = "2024-07-28"
WINDOW_DAYS = 30
EVENT_TIME = "T12:00:00Z"
LISTING_COLUMNS = [
    "id",
    "neighbourhood_cleansed",
    "latitude",
    "longitude",
    "property_type",
    "bedrooms",
    "bathrooms",
    "price",
    "first_review",
]


def parse_price(text: pd.Series) -> pd.Series:
    """'$1,254.00' -> 1254.0; empty stays NaN; anything else is a DataError."""
    cleaned = text.fillna("").astype(str).str.strip().str.replace(r"[$,]", "", regex=True)
    values = pd.to_numeric(cleaned.where(cleaned != "", None), errors="coerce")
    broken = values.isna() & (cleaned != "")
    if broken.any():
        raise DataError(f"barossa: unreadable price {text[broken].iloc[0]!r}")
    return values


def build(folder: pathlib.Path, seed: int) -> Imported:
    del seed  # nothing is simulated
    l_path, r_path = folder / SOURCE_FILES[0], folder / SOURCE_FILES[1]
    src = read_source_csv(l_path, dtype={"id": str, "price": str, "first_review": str})
    require_columns(src, LISTING_COLUMNS, l_path)
    reviews = read_source_csv(
        r_path, dtype={"listing_id": str, "review_id": str, "user_id": str, "date": str}
    )
    require_columns(reviews, ["listing_id", "review_id", "date", "user_id"], r_path)

    listed = src["first_review"].fillna(SCRAPE_DATE)
    leads = pd.DataFrame(
        {
            contracts.LEAD_ID: src["id"],
            contracts.LATITUDE: src["latitude"],
            contracts.LONGITUDE: src["longitude"],
            contracts.REGION: src["neighbourhood_cleansed"],
            contracts.PROPERTY_TYPE: src["property_type"].str.lower(),
            contracts.PRICE: parse_price(src["price"]),
            contracts.BEDROOMS: src["bedrooms"].astype("Int64"),
            contracts.BATHROOMS: src["bathrooms"],
            contracts.LIVING_AREA: np.nan,
            contracts.LISTED_DATE: listed,
            contracts.STATUS: "active",
        }
    )
    reviews = reviews.sort_values(["date", "review_id"], kind="stable").reset_index(drop=True)
    events = pd.DataFrame(
        {
            contracts.EVENT_ID: "rv" + reviews["review_id"],
            contracts.USER_ID: "b" + reviews["user_id"],
            contracts.LEAD_ID: reviews["listing_id"],
            contracts.EVENT_TYPE: "purchase",
            contracts.TIMESTAMP: reviews["date"] + EVENT_TIME,
            contracts.REQUEST_ID: "",
        }
    )
    first = reviews.drop_duplicates("user_id", keep="first")  # reviews are in date order
    users = (
        pd.DataFrame(
            {
                contracts.USER_ID: ("b" + first["user_id"]).to_numpy(),
                contracts.HOME_LATITUDE: np.nan,
                contracts.HOME_LONGITUDE: np.nan,
                contracts.SIGNUP_DATE: first["date"].to_numpy(),
            }
        )
        .sort_values(contracts.USER_ID, key=lambda s: s.str.slice(1).astype(int))
        .reset_index(drop=True)
    )
    days = sorted(reviews["date"].unique())
    market = _market(leads, reviews, days)
    manifest = {
        "name": "barossa",
        "source": "Inside Airbnb, Barossa Valley, South Australia, scrape of 2024-07-28",
        "attribution": ATTRIBUTION,
        "licence": "CC BY 4.0",
        "currency": "AUD",
        "notes": "reviews are purchase events at 12:00 UTC on their date; living_area unknown",
    }
    span_days = [dt.date.fromisoformat(d) for d in days]
    return Imported(leads, users, events, market, manifest, span_days)


def _market(leads: pd.DataFrame, reviews: pd.DataFrame, days: list[str]) -> pd.DataFrame:
    hoods = sorted(leads[contracts.REGION].unique())
    hood_of_lead = dict(zip(leads[contracts.LEAD_ID], leads[contracts.REGION], strict=True))
    review_day = day_numbers(reviews["date"])
    review_hood = np.searchsorted(hoods, reviews["listing_id"].map(hood_of_lead).to_numpy())
    lead_day = day_numbers(leads[contracts.LISTED_DATE])
    lead_hood = np.searchsorted(hoods, leads[contracts.REGION].to_numpy())
    price = leads[contracts.PRICE].to_numpy(float)
    day_num = day_numbers(days)

    by_day = np.argsort(lead_day, kind="stable")
    cache: dict[int, NDArray[np.float64]] = {}

    def medians(t: int) -> NDArray[np.float64]:
        """Median price per neighbourhood of the leads listed by day t (cached per listing
        count: the set only changes when a lead is listed)."""
        k = int(np.searchsorted(lead_day[by_day], t, side="right"))
        if k not in cache:
            on = np.zeros(len(price), dtype=bool)
            on[by_day[:k]] = True
            on &= np.isfinite(price)
            out = np.full(len(hoods), np.nan)
            grouped = pd.Series(price[on]).groupby(lead_hood[on]).median()
            out[grouped.index.to_numpy()] = grouped.to_numpy()
            cache[k] = out
        return cache[k]

    order = np.argsort(review_day, kind="stable")
    sorted_day, sorted_hood = review_day[order], review_hood[order]
    rows = []
    for text, t in zip(days, day_num, strict=True):
        lo, hi = np.searchsorted(sorted_day, [t - WINDOW_DAYS + 1, t + 1], side="left")
        demand = np.bincount(sorted_hood[lo:hi], minlength=len(hoods))
        inventory = np.bincount(lead_hood[lead_day <= t], minlength=len(hoods))
        now, before = medians(t), medians(t - WINDOW_DAYS)
        with np.errstate(invalid="ignore", divide="ignore"):
            trend = np.where(np.isfinite(now) & np.isfinite(before), now / before - 1.0, 0.0)
        for h in np.flatnonzero(inventory > 0):
            rows.append(
                (
                    hoods[h],
                    text,
                    float(demand[h]),
                    now[h],
                    int(inventory[h]),
                    round(float(np.clip(trend[h], -1.0, 10.0)), 4),
                )
            )
    return market_frame(rows)
