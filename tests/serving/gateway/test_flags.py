"""The gateway's command line is derived from `GatewayConfig`: one flag per field, the model's
defaults, and `flags.argv` writes back what the command line reads."""

from __future__ import annotations

import pathlib

from aiqleads import settings_flags as flags
from serving.gateway.__main__ import main
from serving.gateway.config import GatewayConfig, parse_config
from serving.settings import GatewayOptions, GatewaySettings


def _options() -> dict:
    return {p.name: p for p in main.params}


def test_one_flag_per_config_field_with_the_models_default():
    options = _options()
    assert set(options) == set(GatewayConfig.model_fields)
    for name, field in GatewayConfig.model_fields.items():
        option = options[name]
        if field.is_required():
            assert option.required, name
        else:
            assert option.default == field.default, name
        assert option.help == field.description, name
    # Only the required flag given: the config is the model's defaults.
    params = main.make_context("gateway", ["--model-server", "127.0.0.1:8500"]).params
    assert parse_config(params) == GatewayConfig(model_servers=("127.0.0.1:8500",))


def test_flag_names_and_the_defaults_that_matter():
    names = {o.opts[0] for o in _options().values()}
    assert "--model-timeout-ms" in names and "--request-timeout-ms" not in names
    assert "--model-server" in names and "--event-loop" in names
    claims = _options()["require_claims"]
    assert claims.opts == ["--require-claims"] and claims.secondary_opts == ["--no-require-claims"]
    config = GatewayConfig(model_servers=("127.0.0.1:8500",))
    # Off TF Serving's 8500 (gRPC) and 8501 (REST), where a local model server listens.
    assert (config.rest_port, config.grpc_port) == (8000, 8001)
    assert config.model_timeout_ms == 500


def test_help_shows_every_flag_with_its_default():
    help_text = main.get_help(main.make_context("gateway", ["--model-server", "h:1"]))
    text = " ".join(help_text.split())  # click wraps the lines
    for flag, shown in (
        ("--model-timeout-ms INTEGER", "[default: 500]"),
        ("--rest-port INTEGER", "[default: 8000]"),
        ("--event-loop [uvloop|asyncio]", "[default: uvloop]"),
        ("--model-server TEXT", "[required]"),
    ):
        start = text.index(flag)
        assert shown in text[start : text.index("--", start + len(flag))], flag


def test_the_stack_settings_and_the_process_share_one_default_per_option():
    process = GatewayConfig(model_servers=("127.0.0.1:8500",))
    stack = GatewaySettings()
    for name in GatewayOptions.model_fields:
        assert getattr(stack, name) == getattr(process, name), name
    assert GatewayOptions.model_fields.keys() <= GatewaySettings.model_fields.keys()


def test_argv_writes_back_what_the_command_line_reads(tmp_path: pathlib.Path):
    values = {
        "host": "0.0.0.0",
        "rest_port": 9000,
        "model_servers": ("10.0.0.1:8500", "10.0.0.2:8500"),
        "require_claims": True,
        "attribution_key_file": tmp_path / "key",
        "event_store_url": "redis://127.0.0.1:6390/0",
        "local_cache_ttl_seconds": 2.5,
        "model_timeout_ms": 250,
        "event_loop": "asyncio",
    }
    argv = flags.argv(values)
    assert argv == [
        "--host=0.0.0.0",
        "--rest-port=9000",
        "--model-server=10.0.0.1:8500",
        "--model-server=10.0.0.2:8500",
        "--require-claims",
        f"--attribution-key-file={tmp_path / 'key'}",
        "--event-store-url=redis://127.0.0.1:6390/0",
        "--local-cache-ttl-seconds=2.5",
        "--model-timeout-ms=250",
        "--event-loop=asyncio",
    ]
    config = parse_config(main.make_context("gateway", argv).params)
    assert config == GatewayConfig(**values)
    assert flags.argv({"require_claims": False, "event_store_url": None}) == ["--no-require-claims"]


def test_model_servers_may_be_comma_separated():
    params = main.make_context("gateway", ["--model-server", "10.0.0.1:1, 10.0.0.2:2,"]).params
    assert params["model_servers"] == ("10.0.0.1:1", "10.0.0.2:2")
