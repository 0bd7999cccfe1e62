"""The command line of every serving process, built once for the launcher and the manifests.

Each function returns the arguments after the program (the local launcher puts the binary in
front, the Kubernetes manifests set it as the container's ``command``) from `ServingSettings`
and the addresses of one deployment: loopback ports locally, service names in Kubernetes.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import TypedDict

from typing_extensions import Unpack

from aiqleads import settings_flags
from serving.gateway.config import parse_config
from serving.settings import (
    EventStoreSettings,
    FeatureStoreSettings,
    GatewayOptions,
    RedisSettings,
    ServingSettings,
)

GATEWAY_MODULE = "serving.gateway"  # `python -m serving.gateway`
MONITOR_MODULE = "monitoring"  # `python -m monitoring`
TRIGGER_MODULE = "monitoring.trigger"  # `python -m monitoring.trigger` (`aiqleads trigger`)
FEATURE_UPDATER_MODULE = "serving.feature_store"  # `python -m serving.feature_store`


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
    if ms.session_parallelism:
        args.append(f"--tensorflow_session_parallelism={ms.session_parallelism}")
    return args


def gateway_args(
    settings: ServingSettings,
    *,
    host: str,
    rest_port: int,
    grpc_port: int,
    redis_url: str,
    model_server: str,
    event_store_url: str | None = None,
    online_store_url: str | None = None,
    redis_password_file: pathlib.Path | str | None = None,
    event_store_password_file: pathlib.Path | str | None = None,
    online_store_password_file: pathlib.Path | str | None = None,
    attribution_key_file: pathlib.Path | str | None = None,
    canary_fraction_file: pathlib.Path | str | None = None,
    drain_seconds: float | None = None,
) -> list[str]:
    """Flags of ``python -m serving.gateway``: this replica's addresses, then every
    `GatewayOptions` field of ``settings.gateways``; checked against `GatewayConfig` first.

    The URLs carry no password: the gateway reads it from ``redis_password_file`` and
    ``event_store_password_file`` (a mounted Secret), so it never shows in the process list.
    Without ``attribution_key_file`` the key comes from the gateway's environment (the
    Kubernetes Secret). ``canary_fraction_file`` is the deployment's ``canary.json``, whose
    fraction then overrides ``gateways.canary_fraction``."""
    values: dict[str, object] = {
        "host": host,
        "rest_port": rest_port,
        "grpc_port": grpc_port,
        "redis_url": redis_url,
        "model_servers": (model_server,),
        "model_name": settings.model_name,
        "event_store_url": event_store_url,
        "online_store_url": online_store_url,
        "redis_password_file": redis_password_file and pathlib.Path(redis_password_file),
        "event_store_password_file": event_store_password_file
        and pathlib.Path(event_store_password_file),
        "online_store_password_file": online_store_password_file
        and pathlib.Path(online_store_password_file),
        "attribution_key_file": attribution_key_file and pathlib.Path(attribution_key_file),
        "canary_fraction_file": canary_fraction_file and pathlib.Path(canary_fraction_file),
        **{name: getattr(settings.gateways, name) for name in GatewayOptions.model_fields},
        # With auth on, Envoy forwards the verified token and the gateway checks its users.
        "require_claims": settings.auth.enabled,
        "drain_seconds": drain_seconds,
    }
    # A ConfigError naming the field, not a gateway that exits at start (None: the default).
    parse_config({k: v for k, v in values.items() if v is not None})
    return settings_flags.argv(values)


def gateway_drain_seconds(settings: ServingSettings) -> float:
    """How long a stopping gateway fails /healthz before closing: until Envoy's health checks
    have seen it fail ``unhealthy_threshold`` times, plus one interval of margin."""
    hc = settings.envoy.health_check
    return (hc.unhealthy_threshold + 1) * hc.interval_ms / 1000 + hc.timeout_ms / 1000


class RedisPlace(TypedDict, total=False):
    """Where one ``redis-server`` runs: its address, working folder and config file.

    redis-server reads a config file given as its first argument (the flags after it win);
    a password goes there (a ``requirepass`` line; in Kubernetes rendered from the Secret by
    an initContainer), never in the arguments, which any process can read."""

    bind: str | None
    directory: pathlib.Path | str | None
    config_file: pathlib.Path | str | None


def _redis_server(port: int, place: RedisPlace, options: dict[str, str]) -> list[str]:
    config_file = place.get("config_file")
    args = [str(config_file)] if config_file is not None else []
    args += ["--port", str(port)]
    if (bind := place.get("bind")) is not None:
        args += ["--bind", bind]
    if (directory := place.get("directory")) is not None:
        args += ["--dir", str(directory)]
    for name, value in options.items():
        args += [f"--{name}", value]
    return args


def _append_only(max_memory_mb: int, appendfsync: str) -> dict[str, str]:
    # A store, not a cache: every write in the append-only file, nothing evicted, no RDB.
    return {
        "appendonly": "yes",
        "appendfsync": appendfsync,
        "maxmemory": f"{max_memory_mb}mb",
        "maxmemory-policy": "noeviction",
        "save": "",
    }


def redis_args(redis: RedisSettings, **place: Unpack[RedisPlace]) -> list[str]:
    """Flags of ``redis-server`` as a pure cache: no persistence, LRU within ``max_memory_mb``."""
    cache = {"maxmemory": f"{redis.max_memory_mb}mb", "maxmemory-policy": "allkeys-lru"}
    return _redis_server(redis.port, place, {**cache, "appendonly": "no", "save": ""})


def event_store_args(store: EventStoreSettings, **place: Unpack[RedisPlace]) -> list[str]:
    """Flags of ``redis-server`` as the event log: append-only file, never evicts, no RDB.

    Writes beyond ``max_memory_mb`` fail (the API answers 503) rather than drop events."""
    return _redis_server(store.port, place, _append_only(store.max_memory_mb, store.appendfsync))


def feature_store_args(store: FeatureStoreSettings, **place: Unpack[RedisPlace]) -> list[str]:
    """Flags of ``redis-server`` as the online feature store: append-only file (streamed
    updates survive a restart), never evicts (a feature is never silently dropped, as the
    cache's LRU would), no RDB."""
    return _redis_server(store.port, place, _append_only(store.max_memory_mb, "everysec"))


def feature_updater_args(
    *,
    host: str,
    port: int,
    online_store_url: str,
    event_store_url: str,
    data_dir: pathlib.Path | str | None = None,
    online_store_password_file: pathlib.Path | str | None = None,
    event_store_password_file: pathlib.Path | str | None = None,
) -> list[str]:
    """Flags of ``python -m serving.feature_store`` (the streaming updater, which
    materializes ``data_dir`` first when the store has not been materialized from it); the
    URLs without passwords, which it reads from the password files."""
    values: dict[str, object] = {
        "host": host,
        "port": port,
        "online_store_url": online_store_url,
        "event_store_url": event_store_url,
        "data_dir": data_dir and str(data_dir),
        "online_store_password_file": online_store_password_file,
        "event_store_password_file": event_store_password_file,
    }
    return settings_flags.argv({k: v for k, v in values.items() if v is not None})


def monitor_args(
    settings: ServingSettings,
    *,
    host: str,
    port: int,
    event_store_url: str,
    event_store_password_file: pathlib.Path | str | None = None,
) -> list[str]:
    """Flags of ``python -m monitoring`` (the online-quality monitor, whose `MonitorConfig`
    extends `MonitorSettings`); the URL without a password, which the monitor reads from
    ``event_store_password_file``."""
    values: dict[str, object] = {**settings.monitor.model_dump(), "host": host, "port": port}
    values["model_base_path"] = str(settings.model_base_path)  # each version's statistics
    values["event_store_url"] = event_store_url
    values["event_store_password_file"] = event_store_password_file  # None: no flag
    return settings_flags.argv(values)


def trigger_args(
    settings: ServingSettings,
    *,
    host: str,
    port: int,
    state_dir: pathlib.Path | str,
    event_store_url: str | None = None,
) -> list[str]:
    """Flags of ``python -m monitoring.trigger`` (its `TriggerConfig` extends
    `TriggerSettings`): the settings' fields, this instance's address and state folder."""
    values: dict[str, object] = {**settings.trigger.model_dump(), "host": host, "port": port}
    values["state_dir"] = str(state_dir)
    values["event_store_url"] = event_store_url
    return settings_flags.argv(values)


def prometheus_args(
    config_file: pathlib.Path | str,
    storage_dir: pathlib.Path | str,
    *,
    listen: str,
    retention_hours: int,
) -> list[str]:
    """Flags of ``prometheus`` (2.x): one config file, its own TSDB folder, the web address.

    ``--web.enable-lifecycle`` lets the launcher and tests reload the rules (POST /-/reload)."""
    return [
        f"--config.file={config_file}",
        f"--storage.tsdb.path={storage_dir}",
        f"--storage.tsdb.retention.time={retention_hours}h",
        f"--web.listen-address={listen}",
        "--web.enable-lifecycle",
    ]


def alertmanager_args(
    config_file: pathlib.Path | str, storage_dir: pathlib.Path | str, *, listen: str
) -> list[str]:
    """Flags of ``alertmanager``: one instance, no gossip cluster (an empty cluster address)."""
    return [
        f"--config.file={config_file}",
        f"--storage.path={storage_dir}",
        f"--web.listen-address={listen}",
        "--cluster.listen-address=",
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
