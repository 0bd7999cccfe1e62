"""Drift/skew logic with hand-derived distances, and the executor on the tiny data set."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
import tensorflow_data_validation as tfdv
from tfx.types import standard_artifacts

from components import executor_io
from components.drift_check import component, drift, executor
from components.drift_check import spec as s
from components.example_gen import executor as example_gen_executor
from components.example_gen import interactions
from transforms import features as f

REPO = pathlib.Path(__file__).resolve().parents[3]
TINY = REPO / "tests" / "testdata" / "pipeline" / "tiny"
SCHEMA = REPO / "pipeline" / "schema" / "schema.pbtxt"


@pytest.fixture(scope="module")
def schema():
    return tfdv.load_schema_text(str(SCHEMA))


def _frame(regions: list[str], prices: list[float]) -> pd.DataFrame:
    return pd.DataFrame({f.REGION: regions, f.PRICE: prices})


def test_linf_is_largest_frequency_change(schema):
    # previous: a 50 %, b 50 %; current: a 100 % -> L-infinity = 0.5.
    th = drift.Thresholds(numeric={}, categorical={f.REGION: 0.3})
    report = drift.compare(
        _frame(["a"] * 100, [1.0] * 100),
        _frame(["a"] * 50 + ["b"] * 50, [1.0] * 100),
        None,
        None,
        schema,
        th,
        "2026-01-02",
        "2026-01-01",
    )
    [m] = report.measurements
    assert (m.kind, m.feature, m.measure) == ("drift", f.REGION, drift.LINF)
    assert m.value == pytest.approx(0.5)
    assert not report.passed and "region" in report.reason


def test_js_divergence_zero_for_same_and_one_for_disjoint(schema):
    rng = np.random.default_rng(0)
    th = drift.Thresholds(numeric={f.PRICE: 0.1}, categorical={})
    low = list(rng.uniform(100, 200, 500))
    same = drift.compare(
        _frame(["a"] * 500, low), _frame(["a"] * 500, low), None, None, schema, th, "d", "p"
    )
    assert same.measurements[0].value == pytest.approx(0.0, abs=1e-6) and same.passed
    high = list(rng.uniform(10_000, 20_000, 500))
    moved = drift.compare(
        _frame(["a"] * 500, high), _frame(["a"] * 500, low), None, None, schema, th, "d", "p"
    )
    assert moved.measurements[0].value == pytest.approx(1.0, abs=1e-3)
    assert moved.measurements[0].violated


def test_missing_values_are_ignored_and_skew_uses_logged_features(schema):
    th = drift.Thresholds(numeric={f.PRICE: 0.5}, categorical={f.REGION: 0.3})
    training = _frame(["a", "b"] * 50, [1.0, np.nan] * 50)
    serving = pd.DataFrame({f.REGION: ["b"] * 10})  # logs without prices
    report = drift.compare(training, None, serving, training, schema, th, "d", None)
    assert [(m.kind, m.feature) for m in report.measurements] == [("skew", f.REGION)]
    assert report.measurements[0].value == pytest.approx(0.5)
    assert report.serving_records == 10
    text = report.to_text()
    assert "FAILED" in text and "skew   region" in text


def _market_frame(rows: list[tuple[bytes | str, float, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=[f.REGION, f.MARKET_MEDIAN_PRICE, f.MARKET_INVENTORY])


def test_regional_median_shift_scales_the_log_move_by_the_root_of_the_inventory(schema):
    # a: 100 -> 135 with 25 then 16 leads: |log 1.35| x sqrt(16) = 1.2004.
    # b: 200 -> 100 with 4 leads: log 2 x 2 = 1.3863, the worst. c is new, d has no row
    # today, and e's missing inventory (NaN) and zero median do not count.
    previous = _market_frame(
        [(b"a", 100.0, 25.0), (b"b", 200.0, 4.0), (b"d", 50.0, 9.0), (b"e", 80.0, 9.0)]
    )
    current = _market_frame(
        [(b"a", 135.0, 16.0)] * 3
        + [(b"b", 100.0, 4.0), (b"c", 999.0, 50.0), (b"e", 800.0, np.nan), (b"e", 0.0, 9.0)]
    )
    assert drift.regional_median_shift(current, previous) == ("b", pytest.approx(2 * np.log(2)))
    th = drift.Thresholds(numeric={}, categorical={}, regional_median_shift=1.3)
    report = drift.compare(current, previous, None, None, schema, th, "d", "p")
    [m] = report.measurements
    assert (m.feature, m.measure, m.threshold) == (
        f"{f.MARKET_MEDIAN_PRICE}[b]",
        drift.MEDIAN_SHIFT,
        1.3,
    )
    assert report.reason == "drift on market_median_price[b]: regional_median_shift 1.386 > 1.300"
    looser = drift.Thresholds(numeric={}, categorical={}, regional_median_shift=1.4)
    assert drift.compare(current, previous, None, None, schema, looser, "d", "p").passed
    off = drift.Thresholds(numeric={}, categorical={})
    assert drift.compare(current, previous, None, None, schema, off, "d", "p").measurements == ()


def test_regional_median_shift_needs_a_region_in_both_spans():
    now, then = _market_frame([("a", 100.0, 4.0)]), _market_frame([("b", 100.0, 4.0)])
    assert drift.regional_median_shift(now, then) is None
    assert drift.regional_median_shift(now, pd.DataFrame({f.REGION: ["a"]})) is None


@pytest.mark.parametrize("scenario", [None, "price_inflation"])
def test_one_day_price_inflation_is_caught_and_a_clean_day_is_not(tmp_path, scenario):
    """The default synthetic world with its last day clean or re-priced in one region
    (x1.35), through ExampleGen and the executor's check at the default threshold."""
    from aiqleads.data import synth
    from pipeline.config import DEFAULT_REGIONAL_MEDIAN_SHIFT

    data = synth.generate(synth.preset("default", drift=scenario, drift_days=1), tmp_path).out
    uri = str(tmp_path / "examples")
    no_negatives = interactions.SamplingConfig(negatives_per_positive=0)
    example_gen_executor.generate(str(data), uri, 2, 1, no_negatives)
    limit = DEFAULT_REGIONAL_MEDIAN_SHIFT
    th = drift.Thresholds(numeric={}, categorical={}, regional_median_shift=limit)
    report = executor.run_check(uri, ["train", "eval"], str(SCHEMA), th, None, 1000)
    [m] = report.measurements
    if scenario is None:
        assert report.passed and m.value < limit
    else:
        region = json.loads((data / "ground_truth" / "drift.json").read_text())["region"]
        assert not report.passed
        assert m.feature == f"{f.MARKET_MEDIAN_PRICE}[{region}]" and m.value > limit


def test_unknown_drift_feature_is_rejected(schema):
    with pytest.raises(ValueError, match="nope"):
        drift.drift_schema(schema, drift.Thresholds(numeric={"nope": 0.1}, categorical={}))


def _examples(tmp_path: pathlib.Path) -> standard_artifacts.Examples:
    artifact = standard_artifacts.Examples()
    artifact.uri = str(tmp_path / "examples")
    example_gen_executor.generate(
        str(TINY), artifact.uri, 4, 1, interactions.SamplingConfig(negatives_per_positive=2)
    )
    artifact.split_names = '["train", "eval"]'
    return artifact


def _schema_artifact() -> standard_artifacts.Schema:
    artifact = standard_artifacts.Schema()
    artifact.uri = str(SCHEMA.parent)
    return artifact


def _run(tmp_path, thresholds: dict, log_dir: str = ""):
    drift_report_artifact = s.DriftReport()
    drift_report_artifact.uri = str(tmp_path / "DriftCheck" / "report" / "7")
    props = {
        s.THRESHOLDS_KEY: json.dumps(thresholds),
        s.SERVING_LOG_DIR_KEY: log_dir,
        s.MAX_SERVING_RECORDS_KEY: 1000,
    }
    inputs = {s.EXAMPLES_KEY: [_examples(tmp_path)], s.SCHEMA_KEY: [_schema_artifact()]}
    page, metrics = s.HtmlVisualization(), s.ScalarMetrics()
    page.uri = str(tmp_path / "DriftCheck" / "visualization" / "7" / "value")
    metrics.uri = str(tmp_path / "DriftCheck" / "metrics" / "7" / "value")
    for value_artifact in (page, metrics):  # a value artifact's URI is its file
        pathlib.Path(value_artifact.uri).parent.mkdir(parents=True)
    outputs = {
        s.REPORT_KEY: [drift_report_artifact],
        s.VISUALIZATION_KEY: [page],
        s.METRICS_KEY: [metrics],
    }
    result = executor.Executor().Do(inputs, outputs, props)
    _RUN_VISUALS[str(tmp_path)] = (page, metrics)
    return result, drift_report_artifact


_RUN_VISUALS: dict[str, tuple] = {}  # tmp_path -> the KFP UI artifacts of `_run`


def test_statistics_on_beam_give_the_in_memory_comparisons_report(tmp_path):
    """The executor's check (TFDV on Beam, over the files) against the same comparison on
    the positives read into memory: the same spans, measurements and verdict."""
    from components.drift_check import example_io

    uri = _examples(tmp_path).uri
    logs = tmp_path / "logs"
    logs.mkdir()
    rows = [{"features": {f.REGION: "west", f.LEAD_LATITUDE: 47.0}}] * 15
    (logs / "requests.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    th = drift.Thresholds(
        numeric={f.LEAD_LATITUDE: 0.5, f.PRICE: 0.5},
        categorical={f.REGION: 0.5, f.PROPERTY_TYPE: 0.5},
        regional_median_shift=0.1,
    )
    on_beam = executor.run_check(uri, ["train", "eval"], str(SCHEMA), th, str(logs), 1000)

    everything = example_io.read_examples(uri, ["train", "eval"], batch_size=3)
    positives = everything[everything[f.ENGAGEMENT] > 0]
    assert (everything[f.ENGAGEMENT] == 0).any() and len(positives) > 0
    newest, previous, current, before = drift.split_newest_spans(positives)
    training = example_io.read_examples(uri, ["train"])
    training = training[training[f.ENGAGEMENT] > 0]
    schema = tfdv.load_schema_text(str(SCHEMA))
    serving = example_io.read_serving_logs(str(logs), 1000)
    in_memory = drift.compare(
        current, before, serving, training, schema, th, str(newest), str(previous)
    )
    assert (on_beam.current_span, on_beam.previous_span) == ("2026-01-04", "2026-01-03")
    assert on_beam.serving_records == 15
    kinds = {m.kind for m in on_beam.measurements}
    assert kinds == {drift.DRIFT, drift.SKEW}
    got = {(m.kind, m.feature, m.measure): m.value for m in on_beam.measurements}
    want = {(m.kind, m.feature, m.measure): m.value for m in in_memory.measurements}
    assert got.keys() == want.keys()
    for key, value in want.items():
        assert got[key] == pytest.approx(value, abs=1e-6), key
    assert on_beam.passed == in_memory.passed


def test_executor_passes_and_writes_report(tmp_path):
    # Newest tiny span (2026-01-04) vs 2026-01-03: lead_latitude moves, loose limit passes.
    result, artifact = _run(tmp_path, {"numeric": {f.LEAD_LATITUDE: 1.0}, "categorical": {}})
    assert result is None
    body = json.loads((pathlib.Path(artifact.uri) / s.REPORT_JSON).read_text())
    assert body["passed"] and body["current_span"] == "2026-01-04"
    assert body["previous_span"] == "2026-01-03"
    assert artifact.get_int_custom_property(s.PASSED_PROPERTY) == 1


def test_report_reads_back_from_its_json(tmp_path):
    _, artifact = _run(tmp_path, {"numeric": {f.LEAD_LATITUDE: 1.0}, "categorical": {}})
    report = executor.read_report(artifact.uri)
    assert report.passed and (report.current_span, report.previous_span) == (
        "2026-01-04",
        "2026-01-03",
    )
    assert report.to_json() == (pathlib.Path(artifact.uri) / s.REPORT_JSON).read_text()
    assert executor.read_report(str(tmp_path / "no-report")) is None


def test_executor_fails_execution_with_reason_on_drift(tmp_path):
    # Positives on 2026-01-03 (U1/L4 townhouse, U1/L1 house, U2/L5 house) vs 2026-01-04
    # (U3/L2 condo, U2/L1 house): condo share goes 0 -> 0.5, so L-infinity = 0.5.
    result, artifact = _run(tmp_path, {"numeric": {}, "categorical": {f.PROPERTY_TYPE: 0.2}})
    assert result.execution_result.code == executor_io.FAILED_PRECONDITION
    message = result.execution_result.result_message
    assert message.startswith("drift check failed: drift on property_type: l_infinity 0.500")
    rejected = pathlib.Path(artifact.uri).parent / "rejected-7" / s.REPORT_TEXT
    assert "VIOLATION" in rejected.read_text()
    # What the KFP UI shows of it: the page with the verdict and the violating feature
    # first, and each measurement as a scalar metric.
    page, metrics = _RUN_VISUALS[str(tmp_path)]
    text = pathlib.Path(page.uri).read_text()
    assert "FAILED" in text and "drift on property_type" in text
    first_row = text.split("<tbody>")[1].split("</tr>")[0]
    assert "property_type" in first_row and "VIOLATION" in first_row
    assert metrics.get_float_custom_property("passed") == 0.0
    assert metrics.get_float_custom_property("drift/property_type") == pytest.approx(0.5)
    assert "drift/property_type 0.5\n" in pathlib.Path(metrics.uri).read_text()


def test_executor_measures_serving_skew_from_jsonl_logs(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    lines = [json.dumps({"features": {f.REGION: "west"}, "user_id": "U1"})] * 20 + ["not json"]
    (logs / "requests.jsonl").write_text("\n".join(lines) + "\n")
    th = {"numeric": {}, "categorical": {f.REGION: 0.9}}
    result, artifact = _run(tmp_path, th, log_dir=str(logs))
    body = json.loads((pathlib.Path(artifact.uri) / s.REPORT_JSON).read_text())
    skew = [m for m in body["measurements"] if m["kind"] == "skew"]
    assert body["serving_records"] == 20
    assert skew and skew[0]["value"] == pytest.approx(1.0)  # "west" never seen in training
    assert result.execution_result.code == executor_io.FAILED_PRECONDITION


def _to_ram(local: str, ram: str) -> None:
    """Copies the tree under ``local`` to ``ram`` (TensorFlow's in-memory file system)."""
    for directory, _, files in tf.io.gfile.walk(local):
        target = ram + directory[len(local) :]
        tf.io.gfile.makedirs(target)
        for name in files:
            tf.io.gfile.copy(f"{directory}/{name}", f"{target}/{name}")


def test_the_check_reads_and_writes_a_non_local_file_system_as_a_local_one(tmp_path, monkeypatch):
    """Examples, serving logs and the report on `ram://` (in memory, as `gs://` would be
    remote): no path goes through `open`, `os` or `pathlib` (which would leave a local
    `ram:` folder), and the report is the local one's."""
    monkeypatch.chdir(tmp_path)
    logs = tmp_path / "logs"
    logs.mkdir()
    lines = [json.dumps({"features": {f.REGION: "west"}, "user_id": "U1"})] * 20
    (logs / "requests.jsonl").write_text("\n".join(lines) + "\n")
    th = {"numeric": {f.LEAD_LATITUDE: 1.0}, "categorical": {f.REGION: 0.9}}
    _, local = _run(tmp_path, th, log_dir=str(logs))

    root = f"ram://{tmp_path.name}"
    examples = _examples(tmp_path / "again")
    _to_ram(examples.uri, f"{root}/examples")
    _to_ram(str(logs), f"{root}/logs")
    examples.uri = f"{root}/examples"
    report, page, metrics = s.DriftReport(), s.HtmlVisualization(), s.ScalarMetrics()
    report.uri = f"{root}/DriftCheck/report/7"
    page.uri, metrics.uri = f"{root}/page/value", f"{root}/metrics/value"
    props = {
        s.THRESHOLDS_KEY: json.dumps(th),
        s.SERVING_LOG_DIR_KEY: f"{root}/logs",
        s.MAX_SERVING_RECORDS_KEY: 1000,
    }
    result = executor.Executor().Do(
        {s.EXAMPLES_KEY: [examples], s.SCHEMA_KEY: [_schema_artifact()]},
        {s.REPORT_KEY: [report], s.VISUALIZATION_KEY: [page], s.METRICS_KEY: [metrics]},
        props,
    )
    assert result.execution_result.code == executor_io.FAILED_PRECONDITION  # the skew
    in_memory = executor.read_report(report.uri)
    assert tf.io.gfile.exists(f"{root}/DriftCheck/report/rejected-7/{s.REPORT_JSON}")
    assert in_memory.serving_records == 20
    assert in_memory.to_json() == executor.read_report(local.uri).to_json()
    assert "FAILED" in tf.io.gfile.GFile(page.uri).read()
    assert not (tmp_path / "ram:").exists()


def test_component_channels():
    from tfx import types

    check = component.DriftCheck(
        examples=types.Channel(type=standard_artifacts.Examples),
        schema=types.Channel(type=standard_artifacts.Schema),
        numeric={f.PRICE: 0.1},
        categorical={f.REGION: 0.2},
    )
    assert check.outputs[s.REPORT_KEY].type_name == "aiqleads.DriftReport"
    # The Kubeflow Pipelines UI renders these two by their type names.
    assert check.outputs[s.VISUALIZATION_KEY].type_name == "system.HTML"
    assert check.outputs[s.METRICS_KEY].type_name == "system.Metrics"
    thresholds = json.loads(check.exec_properties[s.THRESHOLDS_KEY])
    assert thresholds["numeric"] == {f.PRICE: 0.1}
    assert thresholds["regional_median_shift"] is None
    parsed = executor.thresholds_from_json(json.dumps({**thresholds, "regional_median_shift": 1.5}))
    assert parsed.regional_median_shift == 1.5


# -- The gate and the trigger: population shifts vs data bugs -----------------------------
# previous span: regions a/b half and half, prices around 150, half of them at the market and
# half below; current span: every event in region a (L-infinity 0.5 > 0.1). In the bug case
# lead prices come in cents: x100 (Jensen-Shannon 1.0, the ranges do not overlap: price is a
# population feature, recorded) and so every lead is far above its region's median
# (price_band: above_market 0 -> 1, L-infinity 1.0 > 0.15: blocks).
POPULATION = (f.REGION, f.PRICE)


def _gate_frames(unit_change: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(3)
    before = list(rng.uniform(100, 200, 200))
    bands = ["at_market", "below_market"] * 100
    previous = _frame(["a", "b"] * 100, before).assign(**{f.PRICE_BAND: bands})
    if unit_change:
        current = _frame(["a"] * 200, [p * 100 for p in before])
        return current.assign(**{f.PRICE_BAND: ["above_market"] * 200}), previous
    return _frame(["a"] * 200, before).assign(**{f.PRICE_BAND: bands}), previous


def _gate(schema, reason: str, unit_change: bool) -> drift.DriftReport:
    current, previous = _gate_frames(unit_change)
    th = drift.Thresholds(
        numeric={f.PRICE: 0.15},
        categorical={f.REGION: 0.1, f.PRICE_BAND: 0.15},
        population=POPULATION,
    )
    return drift.compare(current, previous, None, None, schema, th, "d", "p", reason)


def test_alert_triggered_run_records_a_population_shift_and_goes_on(schema):
    report = _gate(schema, "drift:AiqleadsServedFeatureDrift", unit_change=False)
    (shift,) = report.shifts
    assert (shift.feature, shift.value) == (f.REGION, pytest.approx(0.5))
    assert report.passed and report.reason == ""
    assert "SHIFT (retrain)" in report.to_text()
    body = json.loads(report.to_json())
    assert body["population_shifts"] == ["drift on region"] and body["passed"]
    assert drift.DriftReport.from_json(report.to_json()).shifts == report.shifts
    assert _gate(schema, "quality:AiqleadsOnlineCtrDropped", unit_change=False).passed


def test_alert_triggered_run_still_stops_on_a_unit_change(schema):
    report = _gate(schema, "drift:AiqleadsServedFeatureDrift", unit_change=True)
    assert not report.passed
    assert [m.feature for m in report.violations] == [f.PRICE_BAND]
    assert report.reason == "drift on price_band: l_infinity 1.000 > 0.150"
    assert sorted(m.feature for m in report.shifts) == [f.PRICE, f.REGION]  # recorded only


def test_scheduled_or_manual_runs_stop_on_any_violation(schema):
    for reason in ("schedule", "manual", ""):
        report = _gate(schema, reason, unit_change=False)
        assert not report.passed and report.shifts == ()
        assert report.reason == "drift on region: l_infinity 0.500 > 0.100"


def test_default_population_features_leave_the_bug_detectors_blocking():
    from pipeline.config import DEFAULT_POPULATION_FEATURES, DriftConfig

    assert DriftConfig().population_features == DEFAULT_POPULATION_FEATURES
    assert f.PRICE_BAND not in DEFAULT_POPULATION_FEATURES  # a unit change keeps blocking
