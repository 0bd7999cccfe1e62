"""Settings loading shared by the pipeline, KFP and serving settings: YAML, env, validation."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict, Field

from aiqleads import settings_io
from aiqleads.errors import ConfigError

PREFIX = "TEST_APP__"


class _Inner(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    size: int = Field(3, ge=1, le=10)
    label: str = "x"


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "app"
    enabled: bool = True
    inner: _Inner = _Inner()


def test_env_overrides_nest_lower_case_and_parse_yaml_scalars():
    env = {
        "TEST_APP__INNER__SIZE": "7",
        "TEST_APP__ENABLED": "false",
        "TEST_APP__NAME": "'007'",
        "OTHER__NAME": "ignored",
    }
    assert settings_io.env_overrides(env, PREFIX) == {
        "inner": {"size": 7},
        "enabled": False,
        "name": "007",
    }


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"TEST_APP__INNER____SIZE": "1"},
            "malformed environment variable TEST_APP__INNER____SIZE",
        ),
        ({"TEST_APP__INNER": "1", "TEST_APP__INNER__SIZE": "2"}, "conflicts with another one"),
        ({"TEST_APP__INNER__SIZE": "2", "TEST_APP__inner": "1"}, "conflicts with another one"),
        ({"TEST_APP__NAME": "[unclosed"}, r"cannot parse TEST_APP__NAME='\[unclosed'"),
    ],
)
def test_bad_environment_variables_are_config_errors(env, message):
    with pytest.raises(ConfigError, match=message):
        settings_io.env_overrides(env, PREFIX)


def test_merge_overlays_nested_mappings_without_touching_the_inputs():
    base = {"a": {"x": 1, "y": 2}, "b": 1}
    extra = {"a": {"y": 3}, "c": 4}
    assert settings_io.merge(base, extra) == {"a": {"x": 1, "y": 3}, "b": 1, "c": 4}
    assert base == {"a": {"x": 1, "y": 2}, "b": 1}


def test_load_defaults_then_file_then_environment(tmp_path):
    path = tmp_path / "app.yaml"
    path.write_text("name: from-file\ninner:\n  size: 5\n  label: file\n")
    env = {"TEST_APP__INNER__SIZE": "9"}
    loaded = settings_io.load(_Settings, "app settings", path, env_prefix=PREFIX, environ=env)
    assert loaded == _Settings(name="from-file", inner=_Inner(size=9, label="file"))
    assert settings_io.load(_Settings, "app settings", environ=env) == _Settings()


def test_validation_errors_name_the_source_and_every_bad_field(tmp_path):
    path = tmp_path / "app.yaml"
    path.write_text("inner:\n  size: 11\n  colour: red\n")
    with pytest.raises(ConfigError) as info:
        settings_io.load(
            _Settings, "app settings", path, env_prefix=PREFIX, environ={"TEST_APP__NAME": "b"}
        )
    message = str(info.value)
    assert message.startswith(f"invalid app settings ({path} + environment): ")
    assert "inner.size: Input should be less than or equal to 10" in message
    assert "inner.colour: Extra inputs are not permitted" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a\n- b\n", "app settings {path} must be a mapping at the top level"),
        ("a: [1\n", "app settings {path} is not valid YAML"),
    ],
)
def test_bad_yaml_files_are_config_errors(tmp_path, text, message):
    path = tmp_path / "app.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.format(path=path)):
        settings_io.read_yaml_mapping(path, "app settings")


def test_empty_file_is_an_empty_mapping_and_a_missing_one_an_error(tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert settings_io.read_yaml_mapping(empty, "app settings") == {}
    with pytest.raises(ConfigError, match="cannot read app settings .*absent.yaml"):
        settings_io.read_yaml_mapping(tmp_path / "absent.yaml", "app settings")
