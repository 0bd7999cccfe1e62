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
CARRIED_EVENTS = "_carried_events"
"""A history column for carried rows (`history_state`): the row stands for this many events of
one (user, lead, event type), all before the window, at the last one's time; NaN on an event
row. Every join counts a carried row as that many events."""


def event_multiplicity(history: pd.DataFrame) -> np.ndarray:
    """How many events each history row stands for: 1, or a carried row's count."""
    if CARRIED_EVENTS not in history.columns:
        return np.ones(len(history))
    return history[CARRIED_EVENTS].fillna(1.0).to_numpy(float)


def is_carried(history: pd.DataFrame) -> np.ndarray:
    """Which history rows are carried rows."""
    if CARRIED_EVENTS not in history.columns:
        return np.zeros(len(history), bool)
    return np.isfinite(history[CARRIED_EVENTS].to_numpy(float))


def carried_price_rows(hist: pd.DataFrame, carried: np.ndarray) -> pd.DataFrame:
    """The prices the median needs of the carried rows of ``hist`` (which carries ``price``),
    one row per event: per user, the middle of the carried prices, as wide as the user's
    other rows could move the median, with the same number cut off below and above it.

    Cutting a price below every possible median and one above it leaves every later median
    unchanged, so the expanding median over these rows and the user's own events is the
    median over every event, while the rows stay proportional to the user's new events, not
    to the history behind the state.
    """
    price = hist[c.PRICE].to_numpy(float)
    rows = hist[carried & np.isfinite(price)]
    if rows.empty:
        return pd.DataFrame({c.USER_ID: pd.Series(dtype=object), c.PRICE: pd.Series(dtype=float)})
    live = hist[~carried].groupby(c.USER_ID).size()
    frame = pd.DataFrame(
        {
            c.USER_ID: rows[c.USER_ID].to_numpy(),
            c.PRICE: rows[c.PRICE].to_numpy(float),
            "_n": event_multiplicity(rows).astype(np.int64),
        }
    ).sort_values([c.USER_ID, c.PRICE], kind="stable")
    by_user = frame.groupby(c.USER_ID, sort=False)["_n"]
    end = by_user.cumsum().to_numpy()
    start = end - frame["_n"].to_numpy()
    total = by_user.transform("sum").to_numpy()
    moves = frame[c.USER_ID].map(live).fillna(0).to_numpy(np.int64)
    lowest_median = (total - 1) // 2 - moves - 1  # ranks at or below it can never be a median
    highest_median = total // 2 + moves + 1
    cut = np.maximum(0, np.minimum(lowest_median, total - 1 - highest_median))
    keep = np.clip(np.minimum(end, total - cut) - np.maximum(start, cut), 0, None)
    return pd.DataFrame(
        {
            c.USER_ID: np.repeat(frame[c.USER_ID].to_numpy(), keep),
            c.PRICE: np.repeat(frame[c.PRICE].to_numpy(), keep),
        }
    )


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
    columns = [c.USER_ID, c.LEAD_ID, c.EVENT_TYPE, QUERY_TS]
    columns += [CARRIED_EVENTS] if CARRIED_EVENTS in history.columns else []
    hist = history[columns].merge(lead_info, on=c.LEAD_ID, how="left")
    weight = event_multiplicity(hist)
    carried = is_carried(hist)
    prices = carried_price_rows(hist, carried)
    n_q, n_p = len(queries), len(prices)
    # Queries sort before history rows at the same second: "strictly before" for free. The
    # carried prices sort before everything (second -1): they are all before the window.
    stacked = pd.DataFrame(
        {
            c.USER_ID: np.concatenate(
                [
                    queries[c.USER_ID].to_numpy(),
                    hist[c.USER_ID].to_numpy(),
                    prices[c.USER_ID].to_numpy(),
                ]
            ),
            QUERY_TS: np.concatenate(
                [queries[QUERY_TS].to_numpy(), hist[QUERY_TS].to_numpy(), np.full(n_p, -1)]
            ).astype(np.int64),
            "_is_hist": np.concatenate([np.zeros(n_q, bool), np.ones(len(hist) + n_p, bool)]),
            "_row": np.concatenate([np.arange(n_q), np.full(len(hist) + n_p, -1)]),
        }
    )
    no_query, no_price = np.zeros(n_q), np.zeros(n_p)
    for event_type, col in _COUNT_BY_TYPE.items():
        is_type = (hist[c.EVENT_TYPE] == event_type).to_numpy(float)
        stacked[col] = np.concatenate([no_query, is_type * weight, no_price])
    lat = hist[c.LATITUDE].to_numpy(float)
    lon = hist[c.LONGITUDE].to_numpy(float)
    has_geo = np.isfinite(lat) & np.isfinite(lon)
    stacked["_geo_n"] = np.concatenate([no_query, has_geo * weight, no_price])
    stacked["_lat_sum"] = np.concatenate([no_query, np.where(has_geo, lat * weight, 0.0), no_price])
    stacked["_lon_sum"] = np.concatenate([no_query, np.where(has_geo, lon * weight, 0.0), no_price])
    event_price = np.where(carried, np.nan, hist[c.PRICE].to_numpy(float))
    stacked["_price"] = np.concatenate(
        [np.full(n_q, np.nan), event_price, prices[c.PRICE].to_numpy(float)]
    )
    hist_ts = hist[QUERY_TS].to_numpy(float)
    stacked["_hist_ts"] = np.concatenate([np.full(n_q, np.nan), hist_ts, np.full(n_p, np.nan)])

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
    """Each history row's weight in ``user_lead_events`` (view 1 ... purchase 8; a carried
    row's times its count)."""
    weights = history[c.EVENT_TYPE].map(f.EVENT_WEIGHTS)
    return weights.fillna(0.0).to_numpy(float) * event_multiplicity(history)


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
