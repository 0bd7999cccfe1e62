"""Pipeline config: defaults, YAML, environment overrides and strict validation."""

from __future__ import annotations

import pytest

from aiqleads.errors import ConfigError
from pipeline import config


def test_defaults_are_valid_and_paths_resolve_under_the_repo():
    cfg = config.load_config(environ={})
    assert cfg.example_gen.window_spans == 14
    assert cfg.serving_model_path == config.REPO_ROOT / "runs/serving_models/lead_recommender"
    assert cfg.metadata_path.name == "aiqleads-recommender.sqlite"
    with pytest.raises(Exception, match="frozen"):
        cfg.name = "other"  # type: ignore[misc]


def test_yaml_then_environment_override(tmp_path):
    path = tmp_path / "pipeline.yaml"
    path.write_text(
        "example_gen:\n  window_spans: 10\n  eval_days: 3\ndrift:\n  numeric: {price: 0.2}\n"
    )
    env = {"AIQLEADS_PIPELINE__EXAMPLE_GEN__EVAL_DAYS": "4", "UNRELATED": "x"}
    cfg = config.load_config(path, environ=env)
    assert (cfg.example_gen.window_spans, cfg.example_gen.eval_days) == (10, 4)
    assert cfg.drift.numeric == {"price": 0.2}
    # The default population features narrow to those compared.
    compared = set(cfg.drift.numeric) | set(cfg.drift.categorical)
    assert "price" in cfg.drift.population_features
    assert set(cfg.drift.population_features) <= compared
    assert "user_latitude" not in cfg.drift.population_features


@pytest.mark.parametrize(
    ("yaml_text", "env", "message"),
    [
        ("example_gen:\n  windw_spans: 3\n", {}, "example_gen.windw_spans: Extra inputs"),
        (
            "example_gen:\n  window_spans: 5\n  eval_days: 5\n",
            {},
            "eval_days \\(5\\) must be smaller",
        ),
        (
            "example_gen:\n  popularity_exponent: 3\n",
            {},
            "example_gen.popularity_exponent: Input should be less than or equal to 2",
        ),
        ("drift:\n  numeric: {price: 1.5}\n", {}, "drift.numeric.price"),
        ("drift:\n  numeric: {region: 0.1}\n", {}, "both numeric and categorical"),
        (
            "drift:\n  numeric: {price: 0.2}\n  population_features: [user_latitude]\n",
            {},
            "population_features \\['user_latitude'\\] are not compared",
        ),
        ("name: Bad Name\n", {}, "name"),
        ("- a list\n", {}, "mapping at the top level"),
        ("", {"AIQLEADS_PIPELINE__TRAINER__TRAIN_STEPS": "0"}, "trainer.train_steps"),
        ("", {"AIQLEADS_PIPELINE__NOPE": "1"}, "nope: Extra inputs"),
        # Model hyper-parameters are checked when the config loads, not when training starts.
        (
            "trainer:\n  hyperparameters: {embeding_dim: 16}\n",
            {},
            "trainer.hyperparameters: .*unknown model settings \\['embeding_dim'\\]",
        ),
        (
            "trainer:\n  hyperparameters: {shortlist: 0}\n",
            {},
            "shortlist must be in \\[1, 100000\\], got 0",
        ),
        (
            "trainer:\n  hyperparameters: {batch_size: 2.5}\n",
            {},
            "batch_size must be a whole number, got 2.5",
        ),
        (
            "trainer:\n  hyperparameters: {learning_rate: .nan}\n",
            {},
            "learning_rate must be a finite number",
        ),
    ],
)
def test_invalid_config_is_one_clear_error(tmp_path, yaml_text, env, message):
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError, match=message):
        config.load_config(path, environ=env)


def test_valid_hyperparameters_load_and_reach_the_model_config(tmp_path):
    from components.trainer.model_config import ModelConfig

    path = tmp_path / "pipeline.yaml"
    path.write_text("trainer:\n  hyperparameters: {embedding_dim: 16, l2: '1e-5'}\n")
    cfg = config.load_config(path, environ={})
    model = ModelConfig.from_custom_config(cfg.trainer.hyperparameters, strict=True)
    assert (model.embedding_dim, model.l2, model.shortlist) == (16, 1e-5, ModelConfig.shortlist)


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read pipeline config"):
        config.load_config(tmp_path / "absent.yaml", environ={})
