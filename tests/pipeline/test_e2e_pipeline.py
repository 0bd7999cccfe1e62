"""End to end on the smoke data set with the LocalDagRunner (real TFX, Beam, MLMD).

The data set carries a drift scenario on its last span (``new_hotspot``): a window ending the
day before is clean, the window ending on the newest span must be stopped by the drift check.
"""

from __future__ import annotations

import datetime as dt
import json
import pathlib
import shutil

import numpy as np
import pytest

from aiqleads.data import synth
from components.drift_check import spec as drift_spec
from components.example_gen import snapshots
from pipeline import config, local_runner, run_report
from pipeline import pipeline as wiring

pytestmark = pytest.mark.e2e

CLEAN_DAY = dt.date(2026, 1, 13)  # the smoke preset spans 2026-01-01 .. 2026-01-14
DRIFTED_DAY = dt.date(2026, 1, 14)
# The components each stage runs: up to the drift check, then through to the Pusher.
DRIFT_CHECK_STAGE = {
    wiring.EXAMPLE_GEN,
    wiring.STATISTICS_GEN,
    wiring.SCHEMA_GEN,
    wiring.EXAMPLE_VALIDATOR,
    wiring.DRIFT_CHECK,
}
PUSH_STAGE = DRIFT_CHECK_STAGE | {
    wiring.TRANSFORM,
    wiring.TRAINER,
    wiring.RESOLVER,
    wiring.EVALUATOR,
    wiring.SMOKE,
    wiring.PUSHER,
}


@pytest.fixture(scope="module")
def smoke_data(tmp_path_factory) -> pathlib.Path:
    out = tmp_path_factory.mktemp("smoke") / "data"
    synth.generate(synth.preset("smoke", drift="new_hotspot", drift_days=1), out)
    return out


def _config(data: pathlib.Path, runs: pathlib.Path, **changes) -> config.PipelineConfig:
    return config.PipelineConfig(
        data_root=str(data),
        runs_dir=str(runs),
        serving_model_dir=str(runs / "serving_models" / "lead_recommender"),
        example_gen={"window_spans": 14, "eval_days": 2, "negatives_per_positive": 4},
        trainer={"train_steps": 300, "eval_steps": 50},
        **changes,
    )


def _states(summary: local_runner.RunSummary) -> dict[str, str]:
    return {r.component: r.state for r in summary.runs}


def _failed_run(cfg: config.PipelineConfig) -> dict[str, run_report.ComponentRun]:
    store = run_report.connect(cfg.metadata_path)
    run_id = run_report.latest_run_id(store, cfg.name)
    return {r.component: r for r in run_report.component_runs(store, cfg.name, run_id)}


def test_validation_drift_stop_caching_and_contract_violations(smoke_data, tmp_path):
    lines: list[str] = []
    cfg = _config(smoke_data, tmp_path / "runs", as_of=CLEAN_DAY)

    first = local_runner.run(cfg, stage="drift_check", say=lines.append)
    assert _states(first) == {c: "COMPLETE" for c in DRIFT_CHECK_STAGE}
    assert any("DriftCheck done" in line for line in lines)
    report = pathlib.Path(first.drift_report_uri) / drift_spec.REPORT_JSON
    assert '"passed": true' in report.read_text()

    # Same data, same config: every execution comes from the cache.
    again = local_runner.run(cfg, stage="drift_check", say=lines.append)
    assert set(_states(again).values()) == {"CACHED"}

    # The newest span moves half of a metro's views to a new region: stopped, with the reason.
    drifted = cfg.with_overrides(as_of=None)
    with pytest.raises(local_runner.PipelineRunFailed, match=r"DriftCheck failed: .*region"):
        local_runner.run(drifted, stage="transform", say=lines.append)
    runs = _failed_run(drifted)
    assert runs[wiring.DRIFT_CHECK].state == "FAILED"
    assert "drift on region: l_infinity" in runs[wiring.DRIFT_CHECK].message
    assert wiring.TRANSFORM not in runs

    # A span breaking its contract fails ExampleGen: nothing downstream runs.
    broken = tmp_path / "broken"
    shutil.copytree(smoke_data, broken)
    events = broken / "spans" / "2026-01-10" / "events.csv"
    text = events.read_text().splitlines()
    text[5] = text[5].replace(",view,", ",teleport,").replace(",click,", ",teleport,")
    events.write_text("\n".join(text) + "\n")
    bad = _config(broken, tmp_path / "runs_broken", as_of=CLEAN_DAY)
    with pytest.raises(local_runner.PipelineRunFailed, match=r"contract violation.*2026-01-10"):
        local_runner.run(bad, stage="transform", say=lines.append)
    runs = _failed_run(bad)
    assert runs[wiring.EXAMPLE_GEN].state == "FAILED"
    assert not {wiring.STATISTICS_GEN, wiring.DRIFT_CHECK, wiring.TRANSFORM} & set(runs)


def test_full_run_blesses_pushes_and_drift_keeps_the_previous_model(smoke_data, tmp_path):
    import tensorflow as tf

    from transforms import features as f

    lines: list[str] = []
    cfg = _config(smoke_data, tmp_path / "runs", as_of=CLEAN_DAY)
    summary = local_runner.run(cfg, stage="push", say=lines.append)
    states = _states(summary)
    assert set(states) >= PUSH_STAGE
    assert all(states[c] == "COMPLETE" for c in PUSH_STAGE - {wiring.RESOLVER})
    assert summary.pushed_to, "the first model must be blessed and pushed"
    base = cfg.serving_model_path
    versions = sorted(p.name for p in base.iterdir())
    assert len(versions) == 1 and (base / versions[0] / "saved_model.pb").is_file()
    # ExampleGen left the history as of its window's first and last day; the Trainer's
    # serving snapshots came from the last day's.
    states = cfg.pipeline_root / wiring.EXAMPLE_GEN / "history_state"
    window_first = dt.date(2026, 1, 1)  # 14 spans up to CLEAN_DAY: every span from the first
    assert sorted(p.name for p in states.iterdir()) == [
        f"as_of={window_first}",
        f"as_of={CLEAN_DAY}",
    ]
    (trained,) = (cfg.pipeline_root / wiring.TRAINER).glob("model_run/*/training_summary.json")
    assert json.loads(trained.read_text())["history"] == str(states / f"as_of={CLEAN_DAY}")

    model = tf.saved_model.load(str(base / versions[0]))
    recommend = model.signatures[f.RECOMMEND_SIGNATURE]
    catalogue = snapshots.load_catalogue(smoke_data, CLEAN_DAY)
    user = snapshots.load_user_snapshot(smoke_data, CLEAN_DAY)[f.USER_ID].iloc[0]
    k = 10
    out = recommend(
        **{
            f.RECOMMEND_INPUT_USER_ID: tf.constant([user]),
            f.RECOMMEND_INPUT_LATITUDE: tf.constant([np.nan], tf.float32),
            f.RECOMMEND_INPUT_LONGITUDE: tf.constant([np.nan], tf.float32),
            f.RECOMMEND_INPUT_K: tf.constant([k], tf.int32),
        }
    )
    ids = [x.decode() for x in out[f.RECOMMEND_OUTPUT_LEAD_IDS].numpy()[0]]
    assert len(ids) == k and len(set(ids)) == k
    assert set(ids) <= set(catalogue[f.LEAD_ID])  # existing, active at the window's end

    # The drifted newest span is stopped before training: nothing new is pushed.
    with pytest.raises(local_runner.PipelineRunFailed, match="DriftCheck failed"):
        local_runner.run(cfg.with_overrides(as_of=None), stage="push", say=lines.append)
    assert sorted(p.name for p in base.iterdir()) == versions
