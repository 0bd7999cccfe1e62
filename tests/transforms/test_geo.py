"""Geo ops against values derived by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from transforms import geo

KM_PER_DEGREE = geo.EARTH_RADIUS_KM * math.pi / 180.0  # 111.195 km of great circle


def test_one_degree_along_a_meridian_is_r_times_pi_over_180():
    d = geo.haversine_km(
        tf.constant([10.0]), tf.constant([5.0]), tf.constant([11.0]), tf.constant([5.0])
    )
    assert d.numpy()[0] == pytest.approx(KM_PER_DEGREE, rel=1e-5)


def test_paris_to_london_is_about_344_km():
    # City centres: Paris (48.8566, 2.3522), London (51.5074, -0.1278); published ~343.6 km.
    d = geo.haversine_km(
        tf.constant(48.8566, tf.float64),
        tf.constant(2.3522, tf.float64),
        tf.constant(51.5074, tf.float64),
        tf.constant(-0.1278, tf.float64),
    )
    assert float(d) == pytest.approx(343.6, abs=0.5)


def test_distance_across_the_antimeridian_is_short():
    d = geo.haversine_km(*(tf.constant(v, tf.float64) for v in (0.0, 179.5, 0.0, -179.5)))
    assert float(d) == pytest.approx(KM_PER_DEGREE, rel=1e-9)


def test_distance_is_zero_to_itself_and_half_circumference_to_antipode():
    d0 = geo.haversine_km(
        tf.constant(47.6), tf.constant(-122.3), tf.constant(47.6), tf.constant(-122.3)
    )
    d1 = geo.haversine_km(
        tf.constant(0.0, tf.float64),
        tf.constant(0.0, tf.float64),
        tf.constant(0.0, tf.float64),
        tf.constant(180.0, tf.float64),
    )
    assert float(d0) == pytest.approx(0.0, abs=1e-3)
    assert float(d1) == pytest.approx(math.pi * geo.EARTH_RADIUS_KM, rel=1e-9)


def test_grid_cell_rows_and_columns_at_the_edges():
    lat = tf.constant([0.3, -90.0, 90.0, 0.0, 0.0, 0.0])
    lon = tf.constant([0.3, -180.0, 0.0, 180.0, 179.99, -0.01])
    row, col = geo.grid_cell(lat, lon, 0.1)
    # 0.3 + 90 = 90.3 -> row 903; 0.3 + 180 -> col 1803 (exact edges go to the upper cell).
    # -90 -> row 0, -180 -> col 0; 90 folds into the last row 1799; 180 is -180 -> col 0;
    # 179.99 -> col 3599 (last); -0.01 -> col 1799.
    np.testing.assert_array_equal(row.numpy(), [903, 0, 1799, 900, 900, 900])
    np.testing.assert_array_equal(col.numpy(), [1803, 0, 1800, 0, 3599, 1799])


def test_cell_ids_are_unique_per_resolution_and_nest():
    lat = tf.constant([47.6062, 47.6062, 47.6162])
    lon = tf.constant([-122.3321, -122.3311, -122.3321])
    fine = geo.cell_id(lat, lon, geo.FINE_CELL_DEG).numpy()
    coarse = geo.cell_id(lat, lon, geo.COARSE_CELL_DEG).numpy()
    # 47.6062 -> row 13760 (fine); 47.6162 -> 13761: different fine cells, same coarse one.
    assert fine[0] == 13760 * 36000 + int((180 - 122.3321) / 0.01)
    assert fine[0] == fine[1]  # 0.001 deg apart, same 0.01 cell
    assert fine[0] != fine[2]
    assert coarse[0] == coarse[2] == 1376 * 3600 + 576


def test_cell_token_names_resolution_row_and_column():
    tok = geo.cell_token(tf.constant([0.3]), tf.constant([180.0]), 0.1).numpy()[0]
    assert tok == b"0.1:903:0"


def test_unit_vector_round_trip_and_antimeridian_mean():
    lat = tf.constant([10.0, -33.9, 0.0], tf.float64)
    lon = tf.constant([179.0, 151.2, -179.0], tf.float64)
    back_lat, back_lon = geo.from_unit_vector(geo.to_unit_vector(lat, lon))
    np.testing.assert_allclose(back_lat.numpy(), lat.numpy(), atol=1e-9)
    np.testing.assert_allclose(back_lon.numpy(), lon.numpy(), atol=1e-9)
    # The mean of 179 E and 179 W on the equator is on the antimeridian, not at 0.
    xyz = geo.to_unit_vector(
        tf.constant([0.0, 0.0], tf.float64), tf.constant([179.0, -179.0], tf.float64)
    )
    _, mean_lon = geo.from_unit_vector(tf.reduce_sum(xyz, axis=0))
    assert abs(float(mean_lon)) == pytest.approx(180.0, abs=1e-9)
