"""Serving smoke validation on small real SavedModels written in the test.

A "good" model honours the `recommend` contract; broken variants each violate one part of
it. The executor test runs `Do()` on real artifacts (blessing files and properties).
"""

from __future__ import annotations

import os
import pathlib

import pytest

from transforms import features as f

LEADS = ["a", "b", "c", "d", "e"]


def _write_model(path: str, defect: str | None = None) -> str:
    import tensorflow as tf

    from transforms.recommend_signature import RECOMMEND_INPUT_SPECS

    class Model(tf.Module):
        def __init__(self):
            super().__init__()
            self.canary_user_ids = tf.Variable(["u1", "u2"], trainable=False)
            ex = tf.train.Example()
            ex.features.feature["user_id"].bytes_list.value.append(b"u1")
            self.canary_examples = tf.Variable([ex.SerializeToString()] * 3, trainable=False)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
        def serve(self, examples):
            score = tf.fill(tf.shape(examples), 0.25)
            if defect == "nan_score":
                score = score * float("nan")
            return {"score": score}

        @tf.function(input_signature=RECOMMEND_INPUT_SPECS)
        def recommend(self, user_id, latitude, longitude, k):
            b = tf.size(user_id)
            top = tf.minimum(tf.reduce_max(k), len(LEADS))
            ids = tf.tile(tf.constant(LEADS)[None, :top], [b, 1])
            scores = tf.tile(tf.linspace(0.9, 0.1, len(LEADS))[None, :top], [b, 1])
            if defect == "duplicates":
                ids = tf.tile(tf.constant(["a"])[None, :], [b, top])
            if defect == "ascending":
                scores = tf.reverse(scores, axis=[1])
            if defect == "slow":
                tf.py_function(lambda: __import__("time").sleep(0.02), [], [])
            return {"lead_ids": ids, "scores": tf.cast(scores, tf.float32)}

    m = Model()
    sigs = {"serving_default": m.serve.get_concrete_function()}
    if defect != "no_recommend":
        sigs[f.RECOMMEND_SIGNATURE] = m.recommend.get_concrete_function()
    tf.saved_model.save(m, path, signatures=sigs)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("smoke_models")
    names = ["good", "duplicates", "ascending", "nan_score", "no_recommend"]
    return {n: _write_model(str(root / n), None if n == "good" else n) for n in names}


def test_good_model_passes_with_latency_figures(models):
    from components.serving_smoke import smoke

    report = smoke.check_saved_model(models["good"], latency_budget_ms=1000, latency_requests=20)
    assert report.passed, report.reasons
    assert report.canary_rows == 4  # two canary users + unknown user with/without location
    assert 0 < report.recommend_p50_ms <= report.recommend_p95_ms


@pytest.mark.parametrize(
    "defect, reason",
    [
        ("duplicates", "duplicate lead ids"),
        ("ascending", "not in descending order"),
        ("nan_score", "serving_default scores outside [0, 1]"),
        ("no_recommend", "missing signatures: ['recommend']"),
    ],
)
def test_broken_models_are_not_blessed(models, defect, reason):
    from components.serving_smoke import smoke

    report = smoke.check_saved_model(models[defect], latency_budget_ms=1000, latency_requests=10)
    assert not report.passed
    assert any(reason in r for r in report.reasons), report.reasons


def test_latency_over_budget_is_not_blessed(models):
    from components.serving_smoke import smoke

    report = smoke.check_saved_model(models["good"], latency_budget_ms=1e-6, latency_requests=10)
    assert not report.passed
    assert "exceeds the budget" in report.reasons[-1]


def test_unloadable_directory_is_not_blessed(tmp_path):
    from components.serving_smoke import smoke

    report = smoke.check_saved_model(str(tmp_path), latency_budget_ms=10)
    assert not report.passed and "does not load" in report.reasons[0]


def _artifacts(tmp_path, model_dir: str | None):
    from tfx.types import standard_artifacts

    model = standard_artifacts.Model()
    model.uri = str(tmp_path / "model")
    model.id = 17
    if model_dir:
        os.makedirs(model.uri)
        os.symlink(model_dir, os.path.join(model.uri, "Format-Serving"))
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = str(tmp_path / "blessing")
    os.makedirs(blessing.uri)
    return model, blessing


def _run(model, blessing, upstream=None, budget=1000.0):
    from components.serving_smoke import spec as s
    from components.serving_smoke.executor import Executor

    inputs = {s.MODEL_KEY: [model]}
    if upstream is not None:
        inputs[s.UPSTREAM_BLESSING_KEY] = [upstream]
    props = {s.LATENCY_BUDGET_MS_KEY: budget, s.LATENCY_REQUESTS_KEY: 10, s.TOP_K_KEY: 3}
    summary, metrics = s.MarkdownVisualization(), s.ScalarMetrics()
    folder = os.path.dirname(blessing.uri)
    summary.uri, metrics.uri = os.path.join(folder, "summary"), os.path.join(folder, "metrics")
    outputs = {s.BLESSING_KEY: [blessing], s.SUMMARY_KEY: [summary], s.METRICS_KEY: [metrics]}
    Executor().Do(inputs, outputs, props)
    return summary, metrics


def test_executor_blesses_a_good_model(models, tmp_path):
    from tfx.components.util import model_utils

    from components.serving_smoke import spec as s

    model, blessing = _artifacts(tmp_path, models["good"])
    summary, metrics = _run(model, blessing)
    assert blessing.get_int_custom_property(s.BLESSED_PROPERTY) == 1
    # What the KFP UI shows: the verdicts and the smoke latency, no evaluation (none given).
    text = pathlib.Path(summary.uri).read_text()
    assert "Evaluator (TFMA thresholds): **not run**" in text
    assert "Serving smoke validation: **passed**" in text and "recommend p95 ms" in text
    assert "Evaluation, overall slice" not in text
    assert metrics.get_float_custom_property("smoke_passed") == 1.0
    p95 = blessing.get_float_custom_property(s.P95_PROPERTY)
    assert metrics.get_float_custom_property("recommend_p95_ms") == pytest.approx(p95)
    assert model_utils.is_model_blessed(blessing)  # what the Pusher reads
    assert blessing.get_int_custom_property(s.CURRENT_MODEL_ID_PROPERTY) == 17
    assert os.path.exists(os.path.join(blessing.uri, s.BLESSED_FILE))
    assert os.path.exists(os.path.join(blessing.uri, s.REPORT_JSON))
    assert blessing.get_float_custom_property(s.P95_PROPERTY) > 0


def test_executor_follows_a_negative_evaluator_blessing(tmp_path):
    from tfx.types import standard_artifacts

    from components.serving_smoke import spec as s

    model, blessing = _artifacts(tmp_path, None)  # no model at all: must not be loaded
    upstream = standard_artifacts.ModelBlessing()
    upstream.set_int_custom_property(s.BLESSED_PROPERTY, 0)
    summary, metrics = _run(model, blessing, upstream=upstream)
    assert blessing.get_int_custom_property(s.BLESSED_PROPERTY) == 0
    assert "Evaluator (TFMA thresholds): **NOT blessed**" in pathlib.Path(summary.uri).read_text()
    assert metrics.get_float_custom_property("evaluator_blessed") == 0.0
    assert os.path.exists(os.path.join(blessing.uri, s.NOT_BLESSED_FILE))
    assert "Evaluator" in blessing.get_string_custom_property(s.REASON_PROPERTY)


def test_component_wires_the_blessing_output_and_validates_parameters():
    from tfx.types import channel_utils, standard_artifacts

    from components.serving_smoke import spec as s
    from components.serving_smoke.component import ServingSmokeValidation

    model = channel_utils.as_channel([standard_artifacts.Model()])
    comp = ServingSmokeValidation(model=model, latency_budget_ms=20.0)
    assert comp.outputs[s.BLESSING_KEY].type_name == "ModelBlessing"
    assert comp.outputs[s.SUMMARY_KEY].type_name == "system.Markdown"
    assert comp.outputs[s.METRICS_KEY].type_name == "system.Metrics"
    assert comp.exec_properties[s.LATENCY_BUDGET_MS_KEY] == 20.0
    with pytest.raises(ValueError, match="latency_budget_ms"):
        ServingSmokeValidation(model=model, latency_budget_ms=0)
