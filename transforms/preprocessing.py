"""`preprocessing_fn`: raw interaction features -> the model's features, inside the TF graph.

Raw keys and transformed keys live in `transforms.features`. Optional raw features arrive
as sparse tensors (missing when unknown): each becomes a dense value plus, where it carries
information, a 0/1 ``*_missing`` flag, with a neutral value (0 after scaling) when missing.
The label and weight are produced only when ``engagement`` is present (training, eval).
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_transform as tft

from transforms import features as f
from transforms import geo, hotspots

OOV_BUCKETS = 1
VOCAB_TOP_K = 1_000_000
FINE_CELL_BUCKETS = 4096
COARSE_CELL_BUCKETS = 512
CELL_X_TYPE_BUCKETS = 8192
PRICE_RATIO_CLIP = 3.0
TREND_CLIP = 1.0
# Example weights by engagement level: negative, view, click, inquiry, purchase.
ENGAGEMENT_WEIGHTS = (1.0, 1.0, 2.0, 4.0, 8.0)

VOCABULARIES = {
    f.USER_ID: f.T_USER_INDEX,
    f.LEAD_ID: f.T_LEAD_INDEX,
    f.REGION: f.T_REGION_INDEX,
    f.PROPERTY_TYPE: f.T_PROPERTY_TYPE_INDEX,
}
"""Raw id feature -> transformed index; the vocabulary file is named after the raw key."""


def _dense(x: tf.Tensor | tf.SparseTensor, dtype=tf.float32) -> tuple[tf.Tensor, tf.Tensor]:
    """A ``[B]`` value (0 where missing or NaN) and its ``[B]`` float presence mask."""
    if isinstance(x, tf.SparseTensor):
        batch = x.dense_shape[0]
        x = tf.sparse.reset_shape(x, tf.stack([batch, tf.constant(1, tf.int64)]))
        present = tf.sparse.to_dense(
            tf.SparseTensor(x.indices, tf.ones_like(x.values, tf.float32), x.dense_shape)
        )[:, 0]
        value = tf.sparse.to_dense(x)[:, 0]
    else:
        value = tf.reshape(x, [-1])
        present = tf.ones_like(value, tf.float32)
    value = tf.cast(value, dtype)
    if dtype.is_floating:
        finite = tf.math.is_finite(value)
        present = present * tf.cast(finite, tf.float32)
        value = tf.where(finite, value, tf.zeros_like(value))
    return value, present


def _strings(x: tf.Tensor) -> tf.Tensor:
    return tf.reshape(x, [-1])


def _zscore_present(x: tf.Tensor, present: tf.Tensor) -> tf.Tensor:
    """z-score with mean and variance over the present values only; 0 where missing."""
    x64, p64 = tf.cast(x, tf.float64), tf.cast(present, tf.float64)
    n = tft.sum(p64)
    s = tft.sum(x64 * p64)
    ss = tft.sum(x64 * x64 * p64)
    mean = s / tf.maximum(n, 1.0)
    var = tf.maximum(ss / tf.maximum(n, 1.0) - mean * mean, 0.0)
    z = (x64 - mean) / tf.sqrt(var + 1e-12)
    return tf.cast(tf.where(p64 > 0, z, tf.zeros_like(z)), tf.float32)


def _log1p_nonneg(x: tf.Tensor) -> tf.Tensor:
    return tf.math.log1p(tf.maximum(x, 0.0))


def _safe_log(x: tf.Tensor, present: tf.Tensor) -> tf.Tensor:
    return tf.where(present > 0, tf.math.log(tf.maximum(x, 1e-6)), tf.zeros_like(x))


def _geo_features(inputs, lat, lon, ptype, region, engaged) -> dict[str, tf.Tensor]:
    out = {}
    fine = geo.cell_token(lat, lon, geo.FINE_CELL_DEG)
    coarse = geo.cell_token(lat, lon, geo.COARSE_CELL_DEG)
    out[f.T_FINE_CELL] = tf.strings.to_hash_bucket_fast(fine, FINE_CELL_BUCKETS)
    out[f.T_COARSE_CELL] = tf.strings.to_hash_bucket_fast(coarse, COARSE_CELL_BUCKETS)
    cross = tf.strings.join([fine, ptype], separator="|")
    out[f.T_CELL_X_TYPE] = tf.strings.to_hash_bucket_fast(cross, CELL_X_TYPE_BUCKETS)

    table = hotspots.demand_table(region, lat, lon, engaged)
    km, _ = hotspots.nearest_hotspot_km(table, region, lat, lon)
    out[f.T_HOTSPOT_DISTANCE] = tf.cast(tf.math.log1p(km), tf.float32)
    density = hotspots.cell_density_table(_strings(inputs[f.LEAD_ID]), lat, lon)
    cell_leads = tf.gather(density, hotspots.density_bucket(lat, lon))
    out[f.T_CELL_DENSITY] = tf.cast(tf.math.log1p(cell_leads), tf.float32)
    return out


def _lead_numeric(inputs) -> dict[str, tf.Tensor]:
    out = {}
    price, price_ok = _dense(inputs[f.PRICE])
    market_price, market_ok = _dense(inputs[f.MARKET_MEDIAN_PRICE])
    log_price = _safe_log(price, price_ok)
    out[f.T_LOG_PRICE] = _zscore_present(log_price, price_ok)
    out[f.T_PRICE_MISSING] = 1.0 - price_ok
    both = price_ok * market_ok
    ratio = log_price - _safe_log(market_price, market_ok)
    ratio = tf.clip_by_value(ratio, -PRICE_RATIO_CLIP, PRICE_RATIO_CLIP)
    out[f.T_PRICE_VS_MARKET] = tf.where(both > 0, ratio, tf.zeros_like(ratio))
    for raw, key, log in (
        (f.BEDROOMS, f.T_BEDROOMS, False),
        (f.BATHROOMS, f.T_BATHROOMS, False),
        (f.LIVING_AREA, f.T_LOG_LIVING_AREA, True),
        (f.LEAD_AGE_DAYS, f.T_LOG_LEAD_AGE, True),
        (f.MARKET_DEMAND, f.T_LOG_MARKET_DEMAND, True),
        (f.MARKET_INVENTORY, f.T_LOG_MARKET_INVENTORY, True),
    ):
        value, ok = _dense(inputs[raw])
        out[key] = _zscore_present(_log1p_nonneg(value) if log else value, ok)
    trend, _ = _dense(inputs[f.MARKET_PRICE_TREND])
    out[f.T_MARKET_TREND] = tf.clip_by_value(trend, -TREND_CLIP, TREND_CLIP)
    return out


def _user_numeric(inputs) -> dict[str, tf.Tensor]:
    out = {}
    for raw, key in (
        (f.USER_VIEWS, f.T_USER_LOG_VIEWS),
        (f.USER_CLICKS, f.T_USER_LOG_CLICKS),
        (f.USER_INQUIRIES, f.T_USER_LOG_INQUIRIES),
        (f.USER_PURCHASES, f.T_USER_LOG_PURCHASES),
    ):
        value, ok = _dense(inputs[raw])
        out[key] = _zscore_present(_log1p_nonneg(value), ok)
    days, days_ok = _dense(inputs[f.USER_DAYS_SINCE_LAST])
    out[f.T_USER_LOG_RECENCY] = _zscore_present(_log1p_nonneg(days), days_ok)
    out[f.T_USER_RECENCY_MISSING] = 1.0 - days_ok
    user_price, user_ok = _dense(inputs[f.USER_MEDIAN_PRICE])
    log_user_price = _safe_log(user_price, user_ok)
    out[f.T_USER_LOG_MEDIAN_PRICE] = _zscore_present(log_user_price, user_ok)
    out[f.T_USER_PRICE_MISSING] = 1.0 - user_ok
    return out


def user_lead_crosses(
    lead_lat: tf.Tensor,
    lead_lon: tf.Tensor,
    price: tf.Tensor,
    price_ok: tf.Tensor,
    user_lat: tf.Tensor,
    user_lon: tf.Tensor,
    user_location_ok: tf.Tensor,
    user_price: tf.Tensor,
    user_price_ok: tf.Tensor,
    user_lead_events: tf.Tensor,
    user_type_share: tf.Tensor,
    user_region_share: tf.Tensor,
) -> dict[str, tf.Tensor]:
    """The user x lead features (`features.T_CROSS_NUMERIC`) from dense float32 values.

    No analyzer: the same function runs inside `preprocessing_fn` and in the ``recommend``
    signature, which applies it to the catalogue's raw values without a Transform pass per
    candidate. ``*_ok`` are 0/1 presence masks; missing inputs give the neutral value 0
    (``user_lead_events`` is 0 when the user never engaged with the lead,
    ``user_type_share`` and ``user_region_share`` 0 when the user has no history).
    """
    known = user_location_ok
    dist = geo.haversine_km(lead_lat, lead_lon, user_lat, user_lon)
    both = user_price_ok * price_ok
    fit = tf.abs(_safe_log(price, price_ok) - _safe_log(user_price, user_price_ok))
    return {
        f.T_DISTANCE: tf.where(known > 0, tf.math.log1p(dist), tf.zeros_like(dist)),
        f.T_USER_LOCATION_MISSING: 1.0 - known,
        f.T_PRICE_FIT: tf.where(both > 0, fit, tf.zeros_like(fit)),
        f.T_USER_LEAD_HISTORY: _log1p_nonneg(user_lead_events),
        f.T_USER_TYPE_SHARE: tf.clip_by_value(user_type_share, 0.0, 1.0),
        f.T_USER_REGION_SHARE: tf.clip_by_value(user_region_share, 0.0, 1.0),
    }


def _crosses(inputs, lat, lon) -> dict[str, tf.Tensor]:
    price, price_ok = _dense(inputs[f.PRICE])
    user_lat, lat_ok = _dense(inputs[f.USER_LATITUDE])
    user_lon, lon_ok = _dense(inputs[f.USER_LONGITUDE])
    user_price, user_price_ok = _dense(inputs[f.USER_MEDIAN_PRICE])
    if f.USER_LEAD_EVENTS in inputs:
        history, _ = _dense(inputs[f.USER_LEAD_EVENTS])
    else:  # a schema from before the feature existed
        history = tf.zeros_like(lat)
    shares = {}
    for key in f.USER_SHARES:  # missing: 0; absent from a schema from before the feature: 0
        shares[key] = _dense(inputs[key])[0] if key in inputs else tf.zeros_like(lat)
    return user_lead_crosses(
        lat,
        lon,
        price,
        price_ok,
        user_lat,
        user_lon,
        lat_ok * lon_ok,
        user_price,
        user_price_ok,
        history,
        shares[f.USER_TYPE_SHARE],
        shares[f.USER_REGION_SHARE],
    )


def preprocessing_fn(inputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    """The Transform graph: ids -> vocab indices, geo/market/behaviour features, label."""
    out: dict[str, tf.Tensor] = {}
    for raw, key in VOCABULARIES.items():
        out[key] = tft.compute_and_apply_vocabulary(
            _strings(inputs[raw]),
            top_k=VOCAB_TOP_K,
            num_oov_buckets=OOV_BUCKETS,
            vocab_filename=raw,
        )
    lat, _ = _dense(inputs[f.LEAD_LATITUDE])
    lon, _ = _dense(inputs[f.LEAD_LONGITUDE])
    region = _strings(inputs[f.REGION])
    ptype = _strings(inputs[f.PROPERTY_TYPE])
    if f.ENGAGEMENT in inputs:
        level, _ = _dense(inputs[f.ENGAGEMENT], tf.int64)
        level = tf.clip_by_value(level, 0, len(ENGAGEMENT_WEIGHTS) - 1)
        demand = tf.gather(tf.constant((0.0, 1.0, 2.0, 4.0, 8.0)), level)
    else:
        level, demand = None, tf.zeros_like(lat)
    out.update(_geo_features(inputs, lat, lon, ptype, region, demand))
    out.update(_lead_numeric(inputs))
    out.update(_user_numeric(inputs))
    out.update(_crosses(inputs, lat, lon))
    if level is not None:
        out[f.T_LABEL] = tf.cast(level > 0, tf.float32)
        out[f.T_WEIGHT] = tf.gather(tf.constant(ENGAGEMENT_WEIGHTS), level)
    return out
