"""Served-feature drift: impressions against a version's published training statistics.

The reference is what the pipeline's drift check writes (components.drift_check), built here
from a hand-made training frame: leads half in region a, half in b, every user at latitude
40.0-40.9. Served answers that show the same mix measure an L-infinity of 0 on region;
answers that show only region a measure max(|1.0 - 0.5|, |0.0 - 0.5|) = 0.5, five times the
threshold of 0.1.
"""

from __future__ import annotations

import json
import time

import pytest
import tensorflow_data_validation as tfdv

from aiqleads.events.records import Impression
from components.drift_check import drift as check
from components.drift_check.executor import write_reference
from monitoring.drift import OFFLINE_METRICS, DriftCollector, ServedDrift, reference_path
from pipeline.pipeline import SCHEMA_PATH

VERSION = 7


@pytest.fixture
def model_base(tmp_path):
    import pandas as pd

    training = pd.DataFrame(
        {
            "region": ["a", "b"] * 50,
            "user_latitude": [40.0 + (i % 10) / 10 for i in range(100)],
            "user_longitude": [-74.0] * 100,
        }
    )
    thresholds = check.Thresholds(
        numeric={"user_latitude": 0.1, "user_longitude": 0.1}, categorical={"region": 0.1}
    )
    schema = tfdv.load_schema_text(str(SCHEMA_PATH))
    stats, compared = check.reference(training, schema, thresholds)
    directory = reference_path(tmp_path, VERSION)
    write_reference(stats, compared, str(directory))
    (directory / OFFLINE_METRICS).write_text(json.dumps({"ndcg@10": 0.42}))
    return tmp_path


def _impression(i: int, regions: list[str], version: int = VERSION) -> Impression:
    return Impression(
        request_id=f"r{i}",
        ts=time.time(),
        user_id=f"u{i}",
        model_version=version,
        variant="stable",
        k=len(regions),
        lead_ids=tuple(f"l{j}" for j in range(len(regions))),
        scores=tuple(1.0 for _ in regions),
        cache="miss",
        features={
            "user_latitude": 40.0 + (i % 10) / 10,
            "user_longitude": -74.0,
            "region": regions,
        },
    )


def _gauges(drift: ServedDrift) -> dict[tuple, float]:
    out = {}
    for family in DriftCollector(drift).collect():
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_same_mix_measures_zero_and_one_region_only_measures_half(model_base):
    drift = ServedDrift(model_base, window_seconds=600, interval_seconds=1, min_rows=20)
    for i in range(20):
        drift.add(_impression(i, ["a", "b"]))
    drift.compute()
    (rows, measured) = drift.results[VERSION]
    assert rows == 40
    by_feature = {d.feature: d for d in measured}
    assert by_feature["region"].measure == "l_infinity"
    assert by_feature["region"].value == pytest.approx(0.0, abs=1e-9)
    assert by_feature["region"].threshold == pytest.approx(0.1)
    assert by_feature["user_latitude"].measure == "jensen_shannon_divergence"
    assert by_feature["user_latitude"].value < 0.05

    shifted = ServedDrift(model_base, window_seconds=600, interval_seconds=1, min_rows=20)
    for i in range(20):
        shifted.add(_impression(i, ["a", "a"]))
    shifted.compute()
    region = next(d for d in shifted.results[VERSION][1] if d.feature == "region")
    assert region.value == pytest.approx(0.5)
    gauges = _gauges(shifted)
    labels = (("feature", "region"), ("measure", "l_infinity"), ("model_version", "7"))
    assert gauges[("aiqleads_serving_feature_drift", labels)] == pytest.approx(0.5)
    assert gauges[("aiqleads_serving_feature_drift_threshold", labels)] == pytest.approx(0.1)
    offline = (("metric", "ndcg@10"), ("model_version", "7"))
    assert gauges[("aiqleads_model_offline_metric", offline)] == pytest.approx(0.42)


def test_too_few_rows_or_no_reference_exports_nothing(model_base):
    drift = ServedDrift(model_base, window_seconds=600, interval_seconds=1, min_rows=50)
    for i in range(20):
        drift.add(_impression(i, ["a", "b"]))  # 40 rows < 50
        drift.add(_impression(i, ["a", "b"] * 30, version=8))  # no reference published
    drift.compute()
    assert VERSION not in drift.results and 8 not in drift.results
    assert drift.missing_reference == {8}
    gauges = _gauges(drift)
    assert gauges[("aiqleads_serving_drift_reference_missing", (("model_version", "8"),))] == 1


def test_old_impressions_leave_the_window(model_base):
    now = [time.time()]
    drift = ServedDrift(model_base, 60, 1, 1, clock=lambda: now[0])
    drift.add(_impression(0, ["a", "b"]))
    now[0] += 61
    drift.compute()
    assert drift.results == {}
