"""create_pipeline: the component list, their order and the wiring, without running it."""

from __future__ import annotations

import json
import pathlib

import pytest
from tfx.dsl.compiler import compiler

from pipeline import config
from pipeline import pipeline as wiring

TINY = pathlib.Path(__file__).resolve().parents[1] / "testdata" / "pipeline" / "tiny"


@pytest.fixture()
def cfg(tmp_path):
    return config.PipelineConfig(
        data_root=str(TINY), runs_dir=str(tmp_path), example_gen={"window_spans": 3, "eval_days": 1}
    )


def _ids(pipeline):
    return [c.id for c in pipeline.components]


def test_drift_stage_components_and_order(cfg):
    p = wiring.create_pipeline(cfg, stage="drift_check")
    ids = _ids(p)
    assert sorted(ids) == sorted(
        [
            wiring.EXAMPLE_GEN,
            wiring.STATISTICS_GEN,
            wiring.SCHEMA_GEN,
            wiring.EXAMPLE_VALIDATOR,
            wiring.DRIFT_CHECK,
        ]
    )
    # Topological order: the runner executes them in this order.
    assert ids.index(wiring.EXAMPLE_GEN) < ids.index(wiring.STATISTICS_GEN)
    assert ids.index(wiring.EXAMPLE_VALIDATOR) < ids.index(wiring.DRIFT_CHECK)
    by_id = {c.id: c for c in p.components}
    drift = by_id[wiring.DRIFT_CHECK]
    assert {n.id for n in drift.upstream_nodes} >= {
        wiring.EXAMPLE_GEN,
        wiring.SCHEMA_GEN,
        wiring.EXAMPLE_VALIDATOR,
    }
    thresholds = json.loads(drift.exec_properties["thresholds_json"])
    assert thresholds["regional_median_shift"] == cfg.drift.regional_median_shift
    assert thresholds["numeric"] == dict(cfg.drift.numeric)
    gen = by_id[wiring.EXAMPLE_GEN]
    assert gen.exec_properties["as_of"] == "2026-01-04"
    assert gen.exec_properties["window_spans"] == 3
    assert p.pipeline_info.pipeline_root == str(cfg.pipeline_root)
    assert p.beam_pipeline_args == list(cfg.beam_args)
    # Compiles to IR (what the Kubeflow runner also consumes).
    ir = compiler.Compiler().compile(p)
    assert len(ir.nodes) == 5


def test_transform_waits_for_the_drift_check(cfg):
    p = wiring.create_pipeline(cfg, stage="transform")
    transform = {c.id: c for c in p.components}[wiring.TRANSFORM]
    assert wiring.DRIFT_CHECK in {n.id for n in transform.upstream_nodes}
    assert transform.exec_properties["preprocessing_fn"] == wiring.PREPROCESSING_FN


def test_the_evaluator_runs_the_trimming_extractors(cfg):
    import importlib

    from tfx.components.util import udf_utils

    evaluator = {c.id: c for c in wiring.create_pipeline(cfg).components}[wiring.EVALUATOR]
    assert evaluator.exec_properties["module_path"] == wiring.EVAL_EXTRACTORS
    hook = udf_utils.get_fn(evaluator.exec_properties, "custom_extractors")
    assert hook is importlib.import_module(wiring.EVAL_EXTRACTORS).custom_extractors


def test_without_drift_check_transform_follows_the_validator(cfg):
    p = wiring.create_pipeline(cfg.with_overrides(drift={"enabled": False}), stage="transform")
    assert wiring.DRIFT_CHECK not in _ids(p)
    transform = {c.id: c for c in p.components}[wiring.TRANSFORM]
    assert wiring.EXAMPLE_VALIDATOR in {n.id for n in transform.upstream_nodes}


def test_fingerprint_tracks_the_window(cfg, tmp_path):
    a = wiring.create_pipeline(cfg, stage="drift_check")
    b = wiring.create_pipeline(cfg, stage="drift_check")
    earlier = wiring.create_pipeline(cfg.with_overrides(as_of="2026-01-03"), stage="drift_check")

    def fp(p):
        gen = {c.id: c for c in p.components}[wiring.EXAMPLE_GEN]
        return gen.exec_properties["input_fingerprint"]

    assert fp(a) == fp(b) != fp(earlier)


def test_runtime_window_leaves_the_choice_of_spans_to_the_run(cfg):
    """What a KFP package needs: no compile-time window, no cache keyed on it."""
    import json

    p = wiring.create_pipeline(cfg, runtime_window=True)
    by_id = {c.id: c for c in p.components}
    gen = by_id[wiring.EXAMPLE_GEN].exec_properties
    assert gen["as_of"] == ""  # ExampleGen: the newest spans when it executes
    assert gen["input_fingerprint"].startswith(wiring.RUNTIME_WINDOW)
    trainer = json.loads(by_id[wiring.TRAINER].exec_properties["custom_config"])
    assert trainer["as_of"] == ""  # the Trainer: snapshots as of the newest span
    assert p.enable_cache is False
    assert wiring.create_pipeline(cfg).enable_cache is True  # local runs keep their cache
    with pytest.raises(ValueError, match="as_of"):
        wiring.create_pipeline(cfg.with_overrides(as_of="2026-01-03"), runtime_window=True)


def test_trainer_custom_config_carries_window_end_and_hyperparameters(cfg):
    from components.trainer import run_fn

    cfg = cfg.with_overrides(
        trainer={"hyperparameters": {"embedding_dim": 16}},
        example_gen={
            "window_spans": 3,
            "negatives_per_positive": 6,
            "hard_fraction": 0.25,
            "popularity_exponent": 0.5,
        },
    )
    custom = wiring.trainer_custom_config(cfg, "2026-01-04")
    assert custom["as_of"] == "2026-01-04"
    assert custom["data_root"] == str(TINY)
    assert custom["embedding_dim"] == 16
    # ExampleGen's sampling reaches the Trainer, for recommend's sampling-bias correction.
    sampling, spans = run_fn.sampling_settings(custom)
    got = (sampling.negatives_per_positive, sampling.hard_fraction, sampling.popularity_exponent)
    assert (*got, spans) == (6, 0.25, 0.5, 3)
    # ... and ExampleGen draws them so.
    gen = {c.id: c for c in wiring.create_pipeline(cfg).components}[wiring.EXAMPLE_GEN]
    assert gen.exec_properties["popularity_exponent"] == 0.5


def test_the_trainer_reads_the_history_state_where_example_gen_leaves_it(cfg):
    from components.example_gen import history_state
    from components.trainer import run_fn

    root = "gs://bucket/pipeline-root"
    by_id = {c.id: c for c in wiring.create_pipeline(cfg, pipeline_root=root).components}
    trainer = by_id[wiring.TRAINER]
    custom = json.loads(trainer.exec_properties["custom_config"])
    # The executor finds the state beside its output (<root>/<component>/<output>/<id>).
    examples_uri = f"{root}/{wiring.EXAMPLE_GEN}/examples/17"
    assert custom[run_fn.HISTORY_STATE_ROOT] == history_state.root_beside(examples_uri)
    assert by_id[wiring.EXAMPLE_GEN].exec_properties["carry_history"] == 1
    off = cfg.with_overrides(example_gen={"carry_history": False})
    by_id = {c.id: c for c in wiring.create_pipeline(off, pipeline_root=root).components}
    assert by_id[wiring.EXAMPLE_GEN].exec_properties["carry_history"] == 0
    custom = json.loads(by_id[wiring.TRAINER].exec_properties["custom_config"])
    assert custom[run_fn.HISTORY_STATE_ROOT] == ""


def test_code_fingerprints_key_the_cache_of_the_components_that_run_the_code(
    cfg, monkeypatch, tmp_path
):
    """TFX caches on properties, not on the code behind them: a change to the Transform or
    Trainer sources must change their properties, so the next run recomputes them."""
    import json

    from pipeline import code_version

    def properties(p):
        by_id = {c.id: c for c in p.components}
        transform = json.loads(by_id[wiring.TRANSFORM].exec_properties["custom_config"])
        trainer = json.loads(by_id[wiring.TRAINER].exec_properties["custom_config"])
        example_gen = by_id[wiring.EXAMPLE_GEN].exec_properties["input_fingerprint"]
        return (
            transform[wiring.CODE_FINGERPRINT_KEY],
            trainer[wiring.CODE_FINGERPRINT_KEY],
            example_gen,
        )

    before = properties(wiring.create_pipeline(cfg))
    assert before == properties(wiring.create_pipeline(cfg))  # same code: cache hit
    import shutil

    # A copy of the sources, then an edit of transforms/geo.py in the copy.
    sources = {
        *code_version.EXAMPLE_GEN_SOURCES,
        *code_version.TRANSFORM_SOURCES,
        *code_version.TRAINER_SOURCES,
    }
    for entry in sources:
        src, dst = code_version.REPO / entry, tmp_path / "code" / entry
        if src.is_dir():
            ignore = shutil.ignore_patterns("__pycache__")
            shutil.copytree(src, dst, ignore=ignore, dirs_exist_ok=True)
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, dst)
    monkeypatch.setattr(code_version, "REPO", tmp_path / "code")
    assert properties(wiring.create_pipeline(cfg)) == before  # a faithful copy
    geo = tmp_path / "code" / "transforms" / "geo.py"
    geo.write_text(geo.read_text() + "\n# an edit\n")
    after = properties(wiring.create_pipeline(cfg))
    assert after[0] != before[0] and after[1] != before[1]  # Transform and Trainer recompute
    assert after[2] == before[2]  # ExampleGen does not run transforms/geo.py


def test_code_fingerprint_follows_file_contents(tmp_path):
    from pipeline import code_version

    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("x = 1\n")
    (tmp_path / "b.py").write_text("y = 2\n")
    sources = ("pkg", "b.py")
    first = code_version.fingerprint(sources, tmp_path)
    assert first == code_version.fingerprint(sources, tmp_path)
    (tmp_path / "pkg" / "a.py").write_text("x = 3\n")
    assert code_version.fingerprint(sources, tmp_path) != first
    with pytest.raises(FileNotFoundError, match="missing.py"):
        code_version.fingerprint(("missing.py",), tmp_path)


def test_unknown_stage_is_rejected(cfg):
    with pytest.raises(ValueError, match="stage"):
        wiring.create_pipeline(cfg, stage="everything")
