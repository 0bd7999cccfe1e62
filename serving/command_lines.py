"""The command line of every serving process, built once for the launcher and the manifests.

Each function returns the arguments after the program (the local launcher puts the binary in
front, the Kubernetes manifests set it as the container's ``command``) from `ServingSettings`
and the addresses of one deployment: loopback ports locally, service names in Kubernetes.
"""

from __future__ import annotations

import dataclasses
import pathlib

from serving.gateway import flags as gateway_flags
from serving.gateway.config import parse_config
from serving.settings import GatewayOptions, RedisSettings, ServingSettings

GATEWAY_MODULE = "serving.gateway"  # `python -m serving.gateway`


@dataclasses.dataclass(frozen=True)
class ModelConfigFile:
    """Models from TF Serving's ``--model_config_file``, re-read every ``poll_seconds``."""

    path: str
    poll_seconds: int


def model_server_args(
    settings: ServingSettings,
    grpc_port: int,
    rest_port: int,
    monitoring_config_file: str | pathlib.Path,
    *,
    host: str | None = None,
    model_config: ModelConfigFile | None = None,
) -> list[str]:
    """Flags of `tensorflow_model_server` (and `aiqleads-model-server`, which takes the same).

    Without ``model_config`` it serves ``settings.model_name`` from ``model_base_path``.
    ``host`` is `aiqleads-model-server`'s only extra flag (TF Serving binds all addresses).
    """
    ms = settings.model_servers
    args = [f"--host={host}"] if host is not None else []
    args += [f"--port={grpc_port}", f"--rest_api_port={rest_port}"]
    if model_config is None:
        args += [
            f"--model_name={settings.model_name}",
            f"--model_base_path={settings.model_base_path}",
        ]
    else:
        args += [
            f"--model_config_file={model_config.path}",
            f"--model_config_file_poll_wait_seconds={model_config.poll_seconds}",
        ]
    args += [
        f"--file_system_poll_wait_seconds={ms.file_system_poll_wait_seconds}",
        f"--monitoring_config_file={monitoring_config_file}",
    ]
    if ms.enable_batching:
        args.append("--enable_batching=true")
    return args


def gateway_args(
    settings: ServingSettings,
    *,
    host: str,
    rest_port: int,
    grpc_port: int,
    redis_url: str,
    model_server: str,
    log_dir: pathlib.Path | None = None,
) -> list[str]:
    """Flags of ``python -m serving.gateway``: this replica's addresses, then every
    `GatewayOptions` field of ``settings.gateways``; checked against `GatewayConfig` first."""
    values: dict[str, object] = {
        "host": host,
        "rest_port": rest_port,
        "grpc_port": grpc_port,
        "redis_url": redis_url,
        "model_servers": (model_server,),
        "model_name": settings.model_name,
        "log_dir": log_dir,
        **{name: getattr(settings.gateways, name) for name in GatewayOptions.model_fields},
    }
    parse_config(values)  # a ConfigError naming the field, not a gateway that exits at start
    return gateway_flags.argv(values)


def redis_args(
    redis: RedisSettings,
    *,
    bind: str | None = None,
    directory: pathlib.Path | None = None,
    password: str | None = None,
) -> list[str]:
    """Flags of ``redis-server`` as a pure cache: no persistence, LRU within ``max_memory_mb``."""
    args = ["--port", str(redis.port)]
    if bind is not None:
        args += ["--bind", bind]
    if directory is not None:
        args += ["--dir", str(directory)]
    if password is not None:
        args += ["--requirepass", password]
    return [
        *args,
        *("--maxmemory", f"{redis.max_memory_mb}mb"),
        *("--maxmemory-policy", "allkeys-lru"),
        *("--appendonly", "no"),
        *("--save", ""),
    ]


def envoy_args(
    config_path: str | pathlib.Path,
    concurrency: int,
    log_level: str,
    *,
    hot_restart: bool = True,
) -> list[str]:
    """Flags of ``envoy`` (each value its own argument: Envoy rejects ``--flag=value``).

    Without ``hot_restart`` several Envoys can share a host (local runs and tests).
    """
    args = ["-c", str(config_path), "--concurrency", str(concurrency), "--log-level", log_level]
    if not hot_restart:
        args.append("--disable-hot-restart")
    return args
