"""Command-line flags of `tensorflow_model_server`, parsed the way absl parses them.

Accepts `--flag=value` and `--flag value`; booleans also as `--flag`, `--noflag`. Unknown flags
and bad values raise `FlagError` naming the flag.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from aiqleads.errors import ConfigError


class FlagError(ConfigError):
    """A command-line flag is unknown or has a bad value."""


@dataclasses.dataclass(frozen=True)
class ServerFlags:
    """The flags the server supports; defaults are TF Serving's."""

    port: int = 8500
    grpc_socket_path: str = ""
    grpc_channel_arguments: str = ""
    rest_api_port: int = 0
    rest_api_timeout_in_ms: int = 30000
    host: str = "0.0.0.0"
    model_name: str = "default"
    model_base_path: str = ""
    model_config_file: str = ""
    model_config_file_poll_wait_seconds: int = 0
    file_system_poll_wait_seconds: int = 1
    monitoring_config_file: str = ""
    enable_batching: bool = False
    batching_parameters_file: str = ""
    allow_version_labels_for_unavailable_models: bool = False
    enable_model_warmup: bool = True
    num_request_iterations_for_warmup: int = 0
    enable_signature_method_name_check: bool = False
    tensorflow_session_parallelism: int = 0
    tensorflow_intra_op_parallelism: int = 0
    tensorflow_inter_op_parallelism: int = 0

    def session_threads(self) -> tuple[int, int]:
        """(intra-op, inter-op) threads of every model's TF Session, as TF Serving sets
        them (`server.cc`): the intra/inter flags when either is set, else both
        ``tensorflow_session_parallelism``; 0 lets TensorFlow pick (one per core)."""
        intra, inter = self.tensorflow_intra_op_parallelism, self.tensorflow_inter_op_parallelism
        if intra > 0 or inter > 0:
            return intra, inter
        return self.tensorflow_session_parallelism, self.tensorflow_session_parallelism


HELP = {
    "port": "gRPC port (0 = no TCP gRPC listener)",
    "grpc_socket_path": "also serve gRPC on this UNIX socket",
    "grpc_channel_arguments": "comma-separated gRPC server arguments, key=value",
    "rest_api_port": "REST/HTTP port (0 = REST off)",
    "rest_api_timeout_in_ms": "deadline of a REST request, in milliseconds",
    "host": "address the gRPC and REST listeners bind (TF Serving binds all: 0.0.0.0)",
    "model_name": "name of the single model (without --model_config_file)",
    "model_base_path": "base path of the single model: numeric version folders inside",
    "model_config_file": "ModelServerConfig text proto; overrides model_name/base_path",
    "model_config_file_poll_wait_seconds": "re-read the config file this often (0 = never)",
    "file_system_poll_wait_seconds": "poll base paths for new versions this often (0 = once)",
    "monitoring_config_file": "MonitoringConfig text proto (Prometheus endpoint)",
    "enable_batching": "merge concurrent Predict calls into batches",
    "batching_parameters_file": "BatchingParameters text proto",
    "allow_version_labels_for_unavailable_models": "allow labels on versions not yet loaded",
    "enable_model_warmup": "replay assets.extra/tf_serving_warmup_requests before serving",
    "num_request_iterations_for_warmup": "runs of each warm-up record (0 = once; max 1000)",
    "enable_signature_method_name_check": (
        "Classify/Regress/Predict also require the signature's method_name (off: TF2 "
        "exports serve Classify and Regress by their inputs and outputs)"
    ),
    "tensorflow_session_parallelism": "threads of a TF session run (0 = TensorFlow picks)",
    "tensorflow_intra_op_parallelism": "threads within one op (with the inter-op flag)",
    "tensorflow_inter_op_parallelism": "ops run at once (with the intra-op flag)",
}

_FIELDS = {f.name: f for f in dataclasses.fields(ServerFlags)}
_TRUE = {"true", "t", "1", "yes", "y"}
_FALSE = {"false", "f", "0", "no", "n"}
_MAX_PORT = 65535
_MAX_WARMUP_ITERATIONS = 1000
_MAX_THREADS = 1024  # our bound on a parallelism flag


def _convert(name: str, raw: str) -> bool | int | str:
    kind = _FIELDS[name].type
    if kind == "bool":
        low = raw.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise FlagError(f"--{name}: expected true or false, got {raw!r}")
    if kind == "int":
        try:
            return int(raw)
        except ValueError:
            raise FlagError(f"--{name}: expected an integer, got {raw!r}") from None
    return raw


def _validate(flags: ServerFlags) -> None:
    for name in ("port", "rest_api_port"):
        value = getattr(flags, name)
        if not 0 <= value <= _MAX_PORT:
            raise FlagError(f"--{name}: {value} is not a port (0..{_MAX_PORT})")
    if flags.port == 0 and flags.rest_api_port == 0 and not flags.grpc_socket_path:
        raise FlagError("no listener: set --port, --rest_api_port or --grpc_socket_path")
    for name in (
        "rest_api_timeout_in_ms",
        "model_config_file_poll_wait_seconds",
        "file_system_poll_wait_seconds",
    ):
        if getattr(flags, name) < 0:
            raise FlagError(f"--{name}: must be >= 0, got {getattr(flags, name)}")
    if not 0 <= flags.num_request_iterations_for_warmup <= _MAX_WARMUP_ITERATIONS:
        raise FlagError(
            "--num_request_iterations_for_warmup: must be in 0.."
            f"{_MAX_WARMUP_ITERATIONS}, got {flags.num_request_iterations_for_warmup}"
        )
    parallelism = (
        "tensorflow_session_parallelism",
        "tensorflow_intra_op_parallelism",
        "tensorflow_inter_op_parallelism",
    )
    for name in parallelism:
        if not 0 <= getattr(flags, name) <= _MAX_THREADS:
            raise FlagError(f"--{name}: must be in 0..{_MAX_THREADS}, got {getattr(flags, name)}")
    if all(getattr(flags, name) > 0 for name in parallelism):
        raise FlagError(
            "Either configure --tensorflow_session_parallelism or "
            "(--tensorflow_intra_op_parallelism, --tensorflow_inter_op_parallelism). "
            "Cannot configure both."
        )
    if not flags.model_config_file and not flags.model_base_path:
        raise FlagError(
            "Both server_options.model_base_path and server_options.model_config_file are "
            "empty! Pass --model_base_path (with --model_name) or --model_config_file"
        )


def parse_flags(argv: Sequence[str]) -> ServerFlags:
    """Parse `argv` (without the program name) into validated `ServerFlags`."""
    values: dict[str, Any] = {}  # each of its field's type (_convert)
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if not arg.startswith("-") or arg in ("-", "--"):
            raise FlagError(f"unexpected argument {arg!r}: flags look like --name=value")
        body = arg.lstrip("-")
        name, eq, raw = body.partition("=")
        if name not in _FIELDS:
            negated = name[2:] if name.startswith("no") else ""
            if not eq and negated in _FIELDS and _FIELDS[negated].type == "bool":
                values[negated] = False
                continue
            raise FlagError(f"Unknown command line flag '{name}' (see --help)")
        if not eq:
            if _FIELDS[name].type == "bool":
                values[name] = True
                continue
            if i >= len(args):
                raise FlagError(f"Missing value for flag '--{name}'")
            raw = args[i]
            i += 1
        values[name] = _convert(name, raw)
    flags = ServerFlags(**values)
    _validate(flags)
    return flags


def usage() -> str:
    """The --help text."""
    lines = ["usage: aiqleads-model-server [--flag=value ...]", "", "Flags:"]
    for name, field in _FIELDS.items():
        default = field.default
        lines.append(f"  --{name}={default!r:<10} {HELP.get(name, '')}")
    return "\n".join(lines)
