"""The offline gate says no, end to end.

On the closed loop's smoke world (`tests/loop_fixtures.py`: one pipeline run already pushed a
model, so the gate passed it): per-region popularity, scored by the Evaluator's own metrics
on the same eval split, misses the value threshold; and a pipeline run whose Trainer barely
moves from its initialisation (a learning rate 200 times smaller) is refused by the change
threshold against the blessed model, and nothing is pushed. That run reuses the loop world's
cached ExampleGen and Transform outputs through a copy of its MLMD store, so only the
Trainer, the Evaluator and what follows run; the loop world itself is left untouched.
"""

from __future__ import annotations

import datetime as dt
import pathlib
import shutil

import pytest
import yaml
from loop_fixtures import first_examples, run_cli  # loaded by tests/conftest.py

pytestmark = pytest.mark.e2e

DEGRADED_LEARNING_RATE = 1e-5  # the default is 2e-3


def _first_run(loop_world):
    """The loop world's first ExampleGen output (its eval split and window) and MLMD path."""
    from components.example_gen import recorded

    cfg, _, examples = first_examples(loop_world)
    last = examples.custom_properties[recorded.WINDOW_LAST_PROPERTY].string_value
    return cfg, examples.uri, dt.date.fromisoformat(last)


def test_popularity_misses_the_value_threshold_the_pushed_model_passed(loop_world, tmp_path):
    from components.baselines.export import export_popularity
    from pipeline.gate_check import evaluate, value_failures

    cfg, examples_uri, last = _first_run(loop_world)
    cut = last - dt.timedelta(days=cfg.example_gen.eval_days)  # what training saw
    popularity = export_popularity(loop_world.data, cut, tmp_path / "popularity")
    metrics = evaluate(popularity, f"{examples_uri}/Split-eval/*", cfg.evaluator, tmp_path / "e")
    failures = value_failures(metrics, cfg.evaluator)
    assert any(f.startswith(f"ndcg@{cfg.evaluator.top_k}") for f in failures), metrics
    # The trained model passed the same threshold on the same split: it was pushed.
    assert loop_world.versions()


@pytest.mark.timeout(2400)
def test_a_degraded_model_is_refused_and_nothing_is_pushed(loop_world, tmp_path):
    import tensorflow_model_analysis as tfma

    from pipeline import run_report

    cfg, _, last = _first_run(loop_world)
    runs = tmp_path / "runs"
    (runs / "metadata").mkdir(parents=True)
    shutil.copy(cfg.metadata_path, runs / "metadata" / cfg.metadata_path.name)
    models = tmp_path / "models"
    config = yaml.safe_load(loop_world.config.read_text())
    config.update(runs_dir=str(runs), serving_model_dir=str(models), as_of=last.isoformat())
    config["trainer"]["hyperparameters"] = {"learning_rate": DEGRADED_LEARNING_RATE}
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config))
    before = loop_world.versions()

    run = run_cli("pipeline", "run", "--config", str(path), timeout=1800)

    print(run.stdout[-2500:])
    assert "InteractionExampleGen cached" in run.stdout  # the same window, from the copy
    assert "pushed model: nothing pushed (not blessed)" in run.stdout
    assert not models.exists() or not any(models.iterdir())
    assert loop_world.versions() == before
    # The Evaluator's validation names the change threshold of NDCG@k among the failures.
    store = run_report.connect(runs / "metadata" / cfg.metadata_path.name)
    evaluation = max(store.get_artifacts_by_type("ModelEvaluation"), key=lambda a: a.id)
    result = tfma.load_validation_result(evaluation.uri)
    assert not result.validation_ok
    failed = [
        (failure.metric_key.name, failure.metric_threshold.HasField("change_threshold"))
        for per_slice in result.metric_validations_per_slice
        for failure in per_slice.failures
    ]
    assert ("ndcg", True) in failed, failed
    blessing = max(store.get_artifacts_by_type("ModelBlessing"), key=lambda a: a.id)
    assert blessing.custom_properties["blessed"].int_value == 0

    # The refused model cannot be labelled, not even with --force.
    trainer_model = max(store.get_artifacts_by_type("Model"), key=lambda a: a.id)
    base = tmp_path / "base"
    shutil.copytree(pathlib.Path(trainer_model.uri) / "Format-Serving", base / "7")
    shutil.copytree(loop_world.model_base / str(before[0]), base / "1")
    deployment = tmp_path / "deployment"
    from serving.deployment import Deployment

    Deployment(deployment, "lead_recommender").initialize(base, 1, 0.0, "test", "start")
    refused = _cli_fails(
        "models", "promote", "7", "--label", "canary", "--force",
        "--deployment-dir", str(deployment), "--pipeline-config", str(path),
    )  # fmt: skip
    assert "version 7 is not blessed: the Evaluator refused its model" in refused


def _cli_fails(*args: str) -> str:
    import subprocess
    import sys

    result = subprocess.run(
        [str(pathlib.Path(sys.executable).parent / "aiqleads"), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    return result.stderr
