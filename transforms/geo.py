"""Geospatial TF ops used inside the Transform graph and the serving signatures.

All ops are plain TensorFlow (no Python-side loops), take degrees in WGS84 and broadcast
like element-wise ops, so the same code runs in ``preprocessing_fn``, in ``recommend`` and
eagerly in tests.
"""

from __future__ import annotations

import math

import tensorflow as tf

EARTH_RADIUS_KM = 6371.0088  # mean Earth radius (IUGG)

# Two grid resolutions: a neighbourhood (~1.1 km of latitude) and a district (~11 km).
FINE_CELL_DEG = 0.01
COARSE_CELL_DEG = 0.1


def haversine_km(lat1: tf.Tensor, lon1: tf.Tensor, lat2: tf.Tensor, lon2: tf.Tensor) -> tf.Tensor:
    """Great-circle distance in km between points given in degrees (float32 or float64)."""
    lat1, lon1, lat2, lon2 = (tf.convert_to_tensor(t) for t in (lat1, lon1, lat2, lon2))
    dtype = lat1.dtype
    rad = tf.constant(math.pi / 180.0, dtype)
    phi1, phi2 = lat1 * rad, lat2 * rad
    dphi = phi2 - phi1
    dlmb = (lon2 - lon1) * rad
    a = tf.sin(dphi / 2.0) ** 2 + tf.cos(phi1) * tf.cos(phi2) * tf.sin(dlmb / 2.0) ** 2
    a = tf.clip_by_value(a, 0.0, 1.0)
    return 2.0 * tf.constant(EARTH_RADIUS_KM, dtype) * tf.asin(tf.sqrt(a))


def wrap_longitude(lon: tf.Tensor) -> tf.Tensor:
    """Longitude mapped into [-180, 180): 180 and -180 are the same meridian."""
    lon = tf.convert_to_tensor(lon)
    return tf.math.floormod(lon + 180.0, 360.0) - 180.0


def grid_cell(lat: tf.Tensor, lon: tf.Tensor, cell_deg: float) -> tuple[tf.Tensor, tf.Tensor]:
    """(row, column) int64 indices of the ``cell_deg`` grid cell holding each point.

    Rows count from the south pole (latitude 90 is folded into the last row), columns from
    the antimeridian, so cells never straddle it and longitude 180 == -180.
    """
    lat = tf.cast(tf.convert_to_tensor(lat), tf.float64)
    lon = wrap_longitude(tf.cast(tf.convert_to_tensor(lon), tf.float64))
    n_rows = int(round(180.0 / cell_deg))
    n_cols = int(round(360.0 / cell_deg))
    # A tiny epsilon keeps values that sit exactly on a cell edge (0.3 / 0.1) in the
    # upper cell despite binary floating point.
    eps = 1e-9
    row = tf.cast(tf.floor((tf.clip_by_value(lat, -90.0, 90.0) + 90.0) / cell_deg + eps), tf.int64)
    col = tf.cast(tf.floor((lon + 180.0) / cell_deg + eps), tf.int64)
    return tf.minimum(row, n_rows - 1), tf.math.floormod(col, n_cols)


def cell_id(lat: tf.Tensor, lon: tf.Tensor, cell_deg: float) -> tf.Tensor:
    """A single int64 id per grid cell: ``row * n_cols + col`` (unique within a resolution)."""
    row, col = grid_cell(lat, lon, cell_deg)
    return row * int(round(360.0 / cell_deg)) + col


def cell_token(lat: tf.Tensor, lon: tf.Tensor, cell_deg: float) -> tf.Tensor:
    """A readable string per cell, ``"<deg>:<row>:<col>"``, for vocabularies and hashing."""
    row, col = grid_cell(lat, lon, cell_deg)
    prefix = f"{cell_deg:g}:"
    return tf.strings.join([prefix, tf.strings.as_string(row), ":", tf.strings.as_string(col)])


def to_unit_vector(lat: tf.Tensor, lon: tf.Tensor) -> tf.Tensor:
    """Points as unit vectors ``[..., 3]`` (x, y, z): averaging these is antimeridian-safe."""
    lat = tf.convert_to_tensor(lat)
    rad = tf.constant(math.pi / 180.0, lat.dtype)
    phi, lmb = lat * rad, tf.convert_to_tensor(lon, lat.dtype) * rad
    return tf.stack([tf.cos(phi) * tf.cos(lmb), tf.cos(phi) * tf.sin(lmb), tf.sin(phi)], axis=-1)


def from_unit_vector(xyz: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(lat, lon) in degrees of the direction of ``xyz [..., 3]`` (need not be normalised)."""
    xyz = tf.convert_to_tensor(xyz)
    x, y, z = xyz[..., 0], xyz[..., 1], xyz[..., 2]
    deg = tf.constant(180.0 / math.pi, xyz.dtype)
    lat = tf.atan2(z, tf.sqrt(x * x + y * y)) * deg
    lon = tf.atan2(y, x) * deg
    return lat, lon
