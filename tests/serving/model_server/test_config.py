"""Config files in TF Serving's text formats, including its own reference files."""

from __future__ import annotations

import pathlib

import pytest

from aiqleads.errors import ConfigError
from serving.model_server import config

TESTDATA = pathlib.Path(__file__).resolve().parents[4] / "shared" / "testdata" / "tf_serving"


def test_good_model_config_parses(tmp_path):
    text = (TESTDATA / "good_model_config.txt").read_text()
    path = tmp_path / "models.config"
    path.write_text(text.replace("${TEST_HALF_PLUS_TWO_DIR}", "/models/two").replace(
        "${TEST_HALF_PLUS_THREE_DIR}", "rel/three"))  # fmt: skip
    parsed = config.load_model_server_config(path)
    names = [(m.name, m.base_path) for m in parsed.model_config_list.config]
    assert names[0] == ("half_plus_two", "/models/two")
    assert names[1][0] == "half_plus_three" and pathlib.Path(names[1][1]).is_absolute()


def test_bad_model_config_is_rejected_with_the_file_named():
    with pytest.raises(ConfigError) as e:
        config.load_model_server_config(TESTDATA / "bad_model_config.txt")
    assert "bad_model_config.txt" in str(e.value)
    assert "not a valid text-format ModelServerConfig" in str(e.value)


def test_bad_model_config_message_carries_tf_servings_parser_line():
    # TF Serving logs the protobuf parser's line, `Error parsing text-format <type>:
    # <line>:<column>: <message>`; the file's first word is not a field of the config.
    with pytest.raises(ConfigError) as e:
        config.load_model_server_config(TESTDATA / "bad_model_config.txt")
    assert str(e.value).endswith(
        "Error parsing text-format tensorflow.serving.ModelServerConfig: 1:1: Message type "
        '"tensorflow.serving.ModelServerConfig" has no field named "improperly".'
    )
    assert "\n" not in str(e.value)


def test_other_config_files_name_their_own_message_type(tmp_path):
    path = tmp_path / "batching.config"
    path.write_text("max_batch_size { value: 8 }\nbatch_timeout_micros { value: x }\n")
    with pytest.raises(ConfigError) as e:
        config.load_batching_parameters(path)
    assert "Error parsing text-format tensorflow.serving.BatchingParameters: 2:" in str(e.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('model_config_list { config { name: "a" base_path: "/a" } config { name: "a" '
         'base_path: "/b" } }', "Illegal to list model a multiple times"),
        ('model_config_list { config { name: "a" } }', "base_path is empty"),
        ('model_config_list { config { name: "a" base_path: "/a" model_platform: "onnx" } }',
         "model_platform 'onnx' is not supported"),
        ('model_config_list { config { name: "a" base_path: "/a" '
         "model_version_policy { specific { } } } }", "lists no versions"),
        ("", "must hold model_config_list"),
    ],
)  # fmt: skip
def test_invalid_configs(tmp_path, text, message):
    path = tmp_path / "c.config"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        config.load_model_server_config(path)
    assert message in str(e.value)


def test_batching_parameters_from_tf_serving_file():
    options = config.load_batching_parameters(TESTDATA / "batching_config.txt")
    assert options == config.BatchingOptions(
        max_batch_size=128, batch_timeout_micros=0, max_enqueued_batches=1000000,
        num_batch_threads=8,
    )  # fmt: skip


def test_batching_parameters_defaults_and_errors(tmp_path):
    path = tmp_path / "b.txt"
    path.write_text("max_batch_size { value: 16 }")
    options = config.load_batching_parameters(path)
    assert options.max_batch_size == 16
    assert options.max_enqueued_batches == config.BatchingOptions().max_enqueued_batches
    path.write_text("max_batch_size { value: 0 }")
    with pytest.raises(ConfigError, match="max_batch_size"):
        config.load_batching_parameters(path)
    path.write_text("max_batch_sizes { value: 1 }")
    with pytest.raises(ConfigError, match="BatchingParameters"):
        config.load_batching_parameters(path)


def test_monitoring_config(tmp_path):
    assert (
        config.load_monitoring_path(TESTDATA / "monitoring_config.txt")
        == "/monitoring/prometheus/metrics"
    )
    path = tmp_path / "m.txt"
    path.write_text("prometheus_config { enable: false }")
    assert config.load_monitoring_path(path) is None
    assert config.load_monitoring_path(None) is None


def test_generated_monitoring_config_is_read_back_with_its_path(tmp_path):
    path = tmp_path / "monitoring.config"
    path.write_text(config.monitoring_config_text("/metrics/tf"))
    assert config.load_monitoring_path(path) == "/metrics/tf"
    path.write_text(config.monitoring_config_text())
    assert config.load_monitoring_path(path) == config.PROMETHEUS_PATH
