"""Flag parsing: absl's forms, TF Serving's defaults, clear errors."""

from __future__ import annotations

import pytest

from serving.model_server.flags import FlagError, parse_flags


def test_defaults_are_tf_servings():
    flags = parse_flags(["--model_base_path=/m"])
    assert (flags.port, flags.rest_api_port, flags.model_name) == (8500, 0, "default")
    assert (flags.file_system_poll_wait_seconds, flags.rest_api_timeout_in_ms) == (1, 30000)
    assert flags.host == "0.0.0.0" and flags.enable_batching is False


def test_equals_and_space_forms_and_booleans():
    flags = parse_flags(
        ["--port", "9000", "--rest_api_port=9001", "-model_name", "m", "--model_base_path=/x",
         "--enable_batching"]
    )  # fmt: skip
    assert (flags.port, flags.rest_api_port, flags.model_name) == (9000, 9001, "m")
    assert flags.enable_batching is True
    assert parse_flags(["--model_base_path=/x", "--enable_batching=false"]).enable_batching is False
    assert parse_flags(["--model_base_path=/x", "--noenable_batching"]).enable_batching is False


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--model_base_path=/x", "--bogus=1"], "Unknown command line flag 'bogus'"),
        (["--model_base_path=/x", "--port=abc"], "--port: expected an integer, got 'abc'"),
        (["--model_base_path=/x", "--port=70000"], "--port: 70000 is not a port"),
        (["--model_base_path=/x", "--enable_batching=maybe"], "expected true or false"),
        (["--model_base_path"], "Missing value for flag '--model_base_path'"),
        (["--port=1"], "model_base_path and server_options.model_config_file are empty"),
        (["--model_base_path=/x", "--port=0"], "no listener"),
        (["--model_base_path=/x", "stray"], "unexpected argument 'stray'"),
        (["--model_base_path=/x", "--file_system_poll_wait_seconds=-1"], "must be >= 0"),
    ],
)
def test_bad_flags_raise_clear_errors(argv, message):
    with pytest.raises(FlagError, match=None) as e:
        parse_flags(argv)
    assert message in str(e.value)


def test_model_warmup_flags_default_on_and_bounded():
    flags = parse_flags(["--model_base_path=/m"])
    assert (flags.enable_model_warmup, flags.num_request_iterations_for_warmup) == (True, 0)
    flags = parse_flags(
        ["--model_base_path=/m", "--noenable_model_warmup", "--num_request_iterations_for_warmup=3"]
    )
    assert (flags.enable_model_warmup, flags.num_request_iterations_for_warmup) == (False, 3)
    for bad in ("-1", "1001"):
        with pytest.raises(
            FlagError, match="--num_request_iterations_for_warmup: must be in 0..1000"
        ):
            parse_flags(["--model_base_path=/m", f"--num_request_iterations_for_warmup={bad}"])


def test_signature_method_name_check_is_off_by_default_as_in_tf_serving():
    assert parse_flags(["--model_base_path=/m"]).enable_signature_method_name_check is False
    flags = parse_flags(["--model_base_path=/m", "--enable_signature_method_name_check"])
    assert flags.enable_signature_method_name_check is True


def test_session_parallelism_flags_as_tf_serving_applies_them():
    # Nothing set: TensorFlow picks (0, 0).
    assert parse_flags(["--model_base_path=/m"]).session_threads() == (0, 0)
    # --tensorflow_session_parallelism sizes both pools.
    flags = parse_flags(["--model_base_path=/m", "--tensorflow_session_parallelism=1"])
    assert flags.session_threads() == (1, 1)
    # The intra/inter flags win over it, each as given (0: TensorFlow picks that one).
    flags = parse_flags(
        ["--model_base_path=/m", "--tensorflow_session_parallelism=4",
         "--tensorflow_intra_op_parallelism=2"]
    )  # fmt: skip
    assert flags.session_threads() == (2, 0)
    flags = parse_flags(
        ["--model_base_path=/m", "--tensorflow_intra_op_parallelism=1",
         "--tensorflow_inter_op_parallelism=3"]
    )  # fmt: skip
    assert flags.session_threads() == (1, 3)


def test_session_parallelism_flags_are_bounded_and_not_all_three():
    with pytest.raises(FlagError, match="--tensorflow_session_parallelism: must be in 0..1024"):
        parse_flags(["--model_base_path=/m", "--tensorflow_session_parallelism=-1"])
    with pytest.raises(FlagError, match="Cannot configure both"):
        parse_flags(
            ["--model_base_path=/m", "--tensorflow_session_parallelism=1",
             "--tensorflow_intra_op_parallelism=1", "--tensorflow_inter_op_parallelism=1"]
        )  # fmt: skip
