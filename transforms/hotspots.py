"""Analyzers learned from the training window: demand hotspots and neighbourhood density.

Both are full-pass `tft.sum` analyzers over fixed-size hashed tables, so they run in one
Beam pass, need no vocabulary files and end up as constants in the Transform graph:

- Hotspots: for each (region, hotspot cell) pair, the engagement-weighted sum of the unit
  vectors of the engaged leads. A region's hotspots are its cells holding at least
  ``HOT_FRACTION`` of the region's busiest cell's demand; each hotspot's centre is the
  demand-weighted mean of its leads (antimeridian-safe, through unit vectors).
- Density: the number of distinct leads per fine grid cell, counted by weighting every
  example with ``1 / (examples of its lead)`` (a nested analyzer: per-lead counts first).

Tables are hashed (``REGION_BUCKETS x HOTSPOT_CELL_BUCKETS``, ``LEAD_BUCKETS``,
``DENSITY_BUCKETS``); collisions only blur the statistics of the colliding keys.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_transform as tft

from transforms import geo

REGION_BUCKETS = 64
HOTSPOT_CELL_DEG = 0.02  # ~2.2 km of latitude
HOTSPOT_CELL_BUCKETS = 1024
HOT_FRACTION = 0.5
MAX_HOTSPOTS = 8  # per region: the busiest cells only, so each row compares with <= 8 centres
LEAD_BUCKETS = 1 << 16
DENSITY_BUCKETS = 1 << 16


def _batch_segment_sum(values: tf.Tensor, segments: tf.Tensor, n: int) -> tf.Tensor:
    """Per-batch partial sums as one ``[1, n, ...]`` row; `tft.sum` adds the rows up."""
    return tf.expand_dims(tf.math.unsorted_segment_sum(values, segments, n), 0)


def region_bucket(region: tf.Tensor) -> tf.Tensor:
    return tf.strings.to_hash_bucket_fast(region, REGION_BUCKETS)


def hotspot_cell_bucket(lat: tf.Tensor, lon: tf.Tensor) -> tf.Tensor:
    token = geo.cell_token(lat, lon, HOTSPOT_CELL_DEG)
    return tf.strings.to_hash_bucket_fast(token, HOTSPOT_CELL_BUCKETS)


def demand_table(region: tf.Tensor, lat: tf.Tensor, lon: tf.Tensor, demand: tf.Tensor) -> tf.Tensor:
    """Analyzer: ``[REGION_BUCKETS, HOTSPOT_CELL_BUCKETS, 4]`` of (demand, demand * xyz)."""
    n = REGION_BUCKETS * HOTSPOT_CELL_BUCKETS
    seg = region_bucket(region) * HOTSPOT_CELL_BUCKETS + hotspot_cell_bucket(lat, lon)
    w = tf.cast(demand, tf.float64)
    xyz = geo.to_unit_vector(tf.cast(lat, tf.float64), tf.cast(lon, tf.float64))
    values = tf.concat([w[:, None], w[:, None] * xyz], axis=1)
    total = tft.sum(_batch_segment_sum(values, seg, n), reduce_instance_dims=False)
    return tf.reshape(total, [REGION_BUCKETS, HOTSPOT_CELL_BUCKETS, 4])


def hotspot_centres(table: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Per region bucket: up to ``MAX_HOTSPOTS`` centres ``[R, M, 3]`` and a validity mask.

    Computed once per batch from the analyzer table (not per row).
    """
    weight = table[..., 0]  # [R, C]
    top_w, top_i = tf.math.top_k(weight, k=MAX_HOTSPOTS)  # [R, M]
    busiest = top_w[:, :1]
    valid = (top_w > 0.0) & (top_w >= HOT_FRACTION * busiest)
    centres = tf.math.l2_normalize(tf.gather(table[..., 1:], top_i, batch_dims=1), axis=-1)
    return centres, valid


def nearest_hotspot_km(
    table: tf.Tensor, region: tf.Tensor, lat: tf.Tensor, lon: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor]:
    """(km to the nearest hotspot of the point's region, 1.0 where the region has none)."""
    all_centres, all_valid = hotspot_centres(table)
    bucket = region_bucket(region)
    centres = tf.gather(all_centres, bucket)  # [B, M, 3]
    hot = tf.gather(all_valid, bucket)  # [B, M]
    point = geo.to_unit_vector(tf.cast(lat, tf.float64), tf.cast(lon, tf.float64))  # [B, 3]
    points = tf.broadcast_to(point[:, None, :], tf.shape(centres))
    cos = tf.reduce_sum(centres * points, axis=-1)
    # atan2 form of the central angle keeps precision for short distances.
    sin = tf.norm(tf.linalg.cross(centres, points), axis=-1)
    km = geo.EARTH_RADIUS_KM * tf.atan2(sin, cos)
    inf = tf.constant(float("inf"), tf.float64)
    nearest = tf.reduce_min(tf.where(hot, km, inf), axis=1)
    missing = tf.math.is_inf(nearest)
    return tf.where(missing, tf.zeros_like(nearest), nearest), tf.cast(missing, tf.float32)


def density_bucket(lat: tf.Tensor, lon: tf.Tensor) -> tf.Tensor:
    return tf.strings.to_hash_bucket_fast(
        geo.cell_token(lat, lon, geo.FINE_CELL_DEG), DENSITY_BUCKETS
    )


def cell_density_table(lead_id: tf.Tensor, lat: tf.Tensor, lon: tf.Tensor) -> tf.Tensor:
    """Analyzer: ``[DENSITY_BUCKETS]`` distinct leads per fine cell (nested analyzers)."""
    lead_b = tf.strings.to_hash_bucket_fast(lead_id, LEAD_BUCKETS)
    ones = tf.ones_like(lead_b, tf.float64)
    per_lead = tft.sum(_batch_segment_sum(ones, lead_b, LEAD_BUCKETS), reduce_instance_dims=False)
    share = 1.0 / tf.maximum(tf.gather(per_lead, lead_b), 1.0)
    cells = density_bucket(lat, lon)
    return tft.sum(_batch_segment_sum(share, cells, DENSITY_BUCKETS), reduce_instance_dims=False)
