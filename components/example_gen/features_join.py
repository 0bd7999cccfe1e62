"""As-of joins that turn raw rows into the raw features of ``transforms.features``.

The same functions build training examples (ExampleGen) and the serving snapshots
(``snapshots.py``), so training and serving see identical feature values. Every function
takes a "query" frame (who and when) and returns it with feature columns added, in the same
row order, never using data after the query time.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from aiqleads import contracts as c
from components.example_gen import raw_tables
from transforms import features as f

QUERY_TS = raw_tables.TS_SECONDS

PRICE_BAND_LOW = 0.8  # price below 0.8 x regional median: "below_market"
PRICE_BAND_HIGH = 1.25  # above 1.25 x regional median: "above_market"
PRICE_BANDS = ("below_market", "at_market", "above_market", "unknown")

LEAD_FEATURES = (
    f.LEAD_LATITUDE,
    f.LEAD_LONGITUDE,
    f.REGION,
    f.PROPERTY_TYPE,
    f.PRICE,
    f.BEDROOMS,
    f.BATHROOMS,
    f.LIVING_AREA,
    f.LEAD_AGE_DAYS,
)
MARKET_FEATURES = (
    f.MARKET_DEMAND,
    f.MARKET_MEDIAN_PRICE,
    f.MARKET_INVENTORY,
    f.MARKET_PRICE_TREND,
)
USER_GEO_FEATURES = (f.USER_LATITUDE, f.USER_LONGITUDE)
USER_BEHAVIOUR_FEATURES = (
    f.USER_VIEWS,
    f.USER_CLICKS,
    f.USER_INQUIRIES,
    f.USER_PURCHASES,
    f.USER_DAYS_SINCE_LAST,
    f.USER_MEDIAN_PRICE,
)
USER_FEATURES = (*USER_GEO_FEATURES, *USER_BEHAVIOUR_FEATURES)
_COUNT_BY_TYPE = {
    "view": f.USER_VIEWS,
    "click": f.USER_CLICKS,
    "inquiry": f.USER_INQUIRIES,
    "purchase": f.USER_PURCHASES,
}


def attach_lead_features(queries: pd.DataFrame, leads: pd.DataFrame) -> pd.DataFrame:
    """Add the lead-side features of ``queries[lead_id]`` as of ``queries[ts_seconds]``."""
    cols = leads[
        [
            c.LEAD_ID,
            c.LATITUDE,
            c.LONGITUDE,
            c.REGION,
            c.PROPERTY_TYPE,
            c.PRICE,
            c.BEDROOMS,
            c.BATHROOMS,
            c.LIVING_AREA,
            c.LISTED_DATE,
        ]
    ].rename(
        columns={
            c.LATITUDE: f.LEAD_LATITUDE,
            c.LONGITUDE: f.LEAD_LONGITUDE,
            c.REGION: f.REGION,
            c.PROPERTY_TYPE: f.PROPERTY_TYPE,
            c.PRICE: f.PRICE,
            c.BEDROOMS: f.BEDROOMS,
            c.BATHROOMS: f.BATHROOMS,
            c.LIVING_AREA: f.LIVING_AREA,
        }
    )
    out = queries.merge(cols, on=c.LEAD_ID, how="left", validate="many_to_one")
    listed = raw_tables.to_seconds(out[c.LISTED_DATE])
    age = (out[QUERY_TS].to_numpy() - listed) / raw_tables.DAY_SECONDS
    out[f.LEAD_AGE_DAYS] = np.maximum(age, 0.0)
    out.index = queries.index
    return out.drop(columns=[c.LISTED_DATE])


def attach_market_features(queries: pd.DataFrame, market: pd.DataFrame) -> pd.DataFrame:
    """Add the region's latest market row on or before the query's UTC date.

    ``queries`` must carry ``region`` (the lead's). Regions with no market row yet get NaN.
    """
    day = pd.to_datetime(queries[QUERY_TS] // raw_tables.DAY_SECONDS, unit="D")
    left = pd.DataFrame({"_row": np.arange(len(queries)), "_day": day.values})
    left[f.REGION] = queries[f.REGION].to_numpy()
    right = market[[c.REGION, c.DATE, c.DEMAND, c.MEDIAN_PRICE, c.INVENTORY, c.PRICE_TREND]]
    right = right.rename(
        columns={
            c.REGION: f.REGION,
            c.DATE: "_day",
            c.DEMAND: f.MARKET_DEMAND,
            c.MEDIAN_PRICE: f.MARKET_MEDIAN_PRICE,
            c.INVENTORY: f.MARKET_INVENTORY,
            c.PRICE_TREND: f.MARKET_PRICE_TREND,
        }
    )
    right = right.dropna(subset=[f.REGION]).sort_values("_day", kind="stable")
    left = left.sort_values("_day", kind="stable")
    left[f.REGION] = left[f.REGION].fillna("")
    joined = pd.merge_asof(left, right, on="_day", by=f.REGION, direction="backward")
    joined = joined.sort_values("_row")
    out = queries.copy()
    for col in MARKET_FEATURES:
        out[col] = joined[col].astype(float).to_numpy()
    return out


def price_band(price: pd.Series, market_median: pd.Series) -> pd.Series:
    """Bucket a lead's price relative to its regional median (a TFMA slicing feature)."""
    ratio = price.to_numpy(dtype=float) / market_median.to_numpy(dtype=float)
    bands = np.full(len(ratio), PRICE_BANDS[3], dtype=object)
    known = np.isfinite(ratio)
    bands[known & (ratio < PRICE_BAND_LOW)] = PRICE_BANDS[0]
    bands[known & (ratio >= PRICE_BAND_LOW) & (ratio <= PRICE_BAND_HIGH)] = PRICE_BANDS[1]
    bands[known & (ratio > PRICE_BAND_HIGH)] = PRICE_BANDS[2]
    return pd.Series(bands, index=price.index)


def attach_user_features(
    queries: pd.DataFrame,
    history: pd.DataFrame,
    leads: pd.DataFrame,
    users: pd.DataFrame,
) -> pd.DataFrame:
    """Add user aggregates over the user's ``history`` events strictly before the query time.

    Counts per event type, days since the last event, median price of the leads engaged
    with, and a location: the home coordinates when known, else the centroid of the leads
    engaged with, else missing.
    """
    lead_info = leads[[c.LEAD_ID, c.LATITUDE, c.LONGITUDE, c.PRICE]]
    hist = history[[c.USER_ID, c.LEAD_ID, c.EVENT_TYPE, QUERY_TS]].merge(
        lead_info, on=c.LEAD_ID, how="left"
    )
    n_q = len(queries)
    # Queries sort before history rows at the same second: "strictly before" for free.
    stacked = pd.DataFrame(
        {
            c.USER_ID: np.concatenate([queries[c.USER_ID].to_numpy(), hist[c.USER_ID].to_numpy()]),
            QUERY_TS: np.concatenate(
                [queries[QUERY_TS].to_numpy(), hist[QUERY_TS].to_numpy()]
            ).astype(np.int64),
            "_is_hist": np.concatenate([np.zeros(n_q, bool), np.ones(len(hist), bool)]),
            "_row": np.concatenate([np.arange(n_q), np.full(len(hist), -1)]),
        }
    )
    for event_type, col in _COUNT_BY_TYPE.items():
        stacked[col] = np.concatenate(
            [np.zeros(n_q), (hist[c.EVENT_TYPE] == event_type).to_numpy(float)]
        )
    lat = hist[c.LATITUDE].to_numpy(float)
    lon = hist[c.LONGITUDE].to_numpy(float)
    has_geo = np.isfinite(lat) & np.isfinite(lon)
    stacked["_geo_n"] = np.concatenate([np.zeros(n_q), has_geo.astype(float)])
    stacked["_lat_sum"] = np.concatenate([np.zeros(n_q), np.where(has_geo, lat, 0.0)])
    stacked["_lon_sum"] = np.concatenate([np.zeros(n_q), np.where(has_geo, lon, 0.0)])
    stacked["_price"] = np.concatenate([np.full(n_q, np.nan), hist[c.PRICE].to_numpy(float)])
    stacked["_hist_ts"] = np.where(stacked["_is_hist"], stacked[QUERY_TS], np.nan)

    stacked = stacked.sort_values([c.USER_ID, QUERY_TS, "_is_hist"], kind="stable")
    grouped = stacked.groupby(c.USER_ID, sort=False)
    sums = grouped[[*_COUNT_BY_TYPE.values(), "_geo_n", "_lat_sum", "_lon_sum"]].cumsum()
    last_ts = grouped["_hist_ts"].cummax()
    last_ts = last_ts.groupby(stacked[c.USER_ID], sort=False).ffill()
    median = grouped["_price"].expanding(min_periods=1).median().reset_index(level=0, drop=True)
    q_mask = ~stacked["_is_hist"].to_numpy()
    rows = stacked["_row"].to_numpy()[q_mask]
    order = np.argsort(rows)

    def pick(values: pd.Series) -> np.ndarray:
        return values.reindex(stacked.index).to_numpy()[q_mask][order]

    out = queries.copy()
    for col in _COUNT_BY_TYPE.values():
        out[col] = pick(sums[col]).astype(np.int64)
    geo_n = pick(sums["_geo_n"])
    with np.errstate(invalid="ignore", divide="ignore"):
        centroid_lat = np.where(geo_n > 0, pick(sums["_lat_sum"]) / geo_n, np.nan)
        centroid_lon = np.where(geo_n > 0, pick(sums["_lon_sum"]) / geo_n, np.nan)
    q_ts = out[QUERY_TS].to_numpy(float)
    out[f.USER_DAYS_SINCE_LAST] = (q_ts - pick(last_ts)) / raw_tables.DAY_SECONDS
    out[f.USER_MEDIAN_PRICE] = pick(median)

    home = users[[c.USER_ID, c.HOME_LATITUDE, c.HOME_LONGITUDE]]
    homes = queries[[c.USER_ID]].merge(home, on=c.USER_ID, how="left")
    home_lat = homes[c.HOME_LATITUDE].to_numpy(float)
    home_lon = homes[c.HOME_LONGITUDE].to_numpy(float)
    has_home = np.isfinite(home_lat) & np.isfinite(home_lon)
    out[f.USER_LATITUDE] = np.where(has_home, home_lat, centroid_lat)
    out[f.USER_LONGITUDE] = np.where(has_home, home_lon, centroid_lon)
    return out


LEAD_GROUP_COLUMNS = {f.PROPERTY_TYPE: c.PROPERTY_TYPE, f.REGION: c.REGION}
"""The lead columns a user share groups by (`features.USER_SHARES`): feature -> contract."""


def pair_event_weights(history: pd.DataFrame) -> np.ndarray:
    """Each history event's weight in ``user_lead_events`` (view 1 ... purchase 8)."""
    weights = history[c.EVENT_TYPE].map(f.EVENT_WEIGHTS)
    return weights.fillna(0.0).to_numpy(float)


def _weighted_before(queries: pd.DataFrame, history: pd.DataFrame, keys: list[str]) -> np.ndarray:
    """Per query row: the engagement-weighted count of ``history`` events with the query's
    ``keys`` values strictly before the query time."""
    n_q = len(queries)
    stacked = pd.DataFrame(
        {
            **{
                key: np.concatenate([queries[key].to_numpy(), history[key].to_numpy()])
                for key in keys
            },
            QUERY_TS: np.concatenate(
                [queries[QUERY_TS].to_numpy(), history[QUERY_TS].to_numpy()]
            ).astype(np.int64),
            # Queries sort before history rows at the same second: "strictly before".
            "_is_hist": np.concatenate([np.zeros(n_q, bool), np.ones(len(history), bool)]),
            "_row": np.concatenate([np.arange(n_q), np.full(len(history), -1)]),
            "_w": np.concatenate([np.zeros(n_q), pair_event_weights(history)]),
        }
    )
    stacked = stacked.sort_values([*keys, QUERY_TS, "_is_hist"], kind="stable")
    sums = stacked.groupby(keys, sort=False, dropna=False)["_w"].cumsum().to_numpy()
    is_query = ~stacked["_is_hist"].to_numpy()
    values = np.empty(n_q)
    values[stacked["_row"].to_numpy()[is_query]] = sums[is_query]
    return values


def attach_pair_history(queries: pd.DataFrame, history: pd.DataFrame) -> pd.DataFrame:
    """Add ``user_lead_events``: the weighted count of the query user's events on the query
    lead strictly before the query time (0 when none)."""
    out = queries.copy()
    out[f.USER_LEAD_EVENTS] = _weighted_before(queries, history, [c.USER_ID, c.LEAD_ID])
    return out


def attach_user_shares(
    queries: pd.DataFrame, history: pd.DataFrame, leads: pd.DataFrame
) -> pd.DataFrame:
    """Add the user shares (`features.USER_SHARES`): of the query user's weighted events
    strictly before the query time, the share on leads with the query lead's property type
    (``user_type_share``) and region (``user_region_share``), read from ``queries`` (as
    `attach_lead_features` leaves them); NaN when the user has none."""
    total = _weighted_before(queries, history, [c.USER_ID])
    out = queries.copy()
    for share, column in f.USER_SHARES.items():
        raw = LEAD_GROUP_COLUMNS[column]
        groups = leads[[c.LEAD_ID, raw]].rename(columns={raw: column})
        grouped = history.merge(groups, on=c.LEAD_ID, how="left", validate="many_to_one")
        same = _weighted_before(queries, grouped, [c.USER_ID, column])
        with np.errstate(invalid="ignore", divide="ignore"):
            out[share] = np.where(total > 0, same / total, np.nan)
    return out
