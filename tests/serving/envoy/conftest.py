"""A real Envoy in front of named test backends, all on free loopback ports, stopped by PID."""

from __future__ import annotations

import json
import pathlib
import sys

import pytest

from serving import auth, command_lines
from serving.envoy.config import (
    CLUSTER_GATEWAY_GRPC,
    CLUSTER_GATEWAY_REST,
    CLUSTER_MODEL_GRPC,
    CLUSTER_MODEL_REST,
    Replica,
)
from serving.envoy.runtime import envoy_binary, healthy_members, write_config
from serving.launcher import Topology
from serving.process import LOOPBACK, Child, free_port, http_status, wait_until
from serving.settings import ServingSettings

BACKEND = pathlib.Path(__file__).with_name("backend.py")
# Short health checks so removal and recovery take a fraction of a second.
FAST_HEALTH = {
    "envoy.health_check.interval_ms": 100,
    "envoy.health_check.timeout_ms": 100,
    "envoy.health_check.unhealthy_threshold": 2,
    "envoy.health_check.healthy_threshold": 1,
}


class Proxy:
    """Envoy plus its backends; ``backends[name]`` is the Child of that test backend."""

    def __init__(self, tmp: pathlib.Path) -> None:
        self.tmp = tmp
        self.children: list[Child] = []
        self.backends: dict[str, Child] = {}
        self.replicas: dict[str, Replica] = {}
        self.settings: ServingSettings | None = None
        self.front = self.model_listener = self.admin = ""  # addresses, once started
        # The front door wants a token: a key pair of the test's own and a token with every
        # scope for every user (tests/security checks who may call what).
        key = auth.create_signing_key(tmp / "secrets" / auth.SIGNING_KEY_FILE)
        self.jwks = auth.write_jwks(tmp / "secrets" / auth.JWKS_FILE, key)
        token = auth.issue_token(key, "test", auth.SCOPES, [auth.ALL_USERS], 3600)
        self.auth_headers = auth.bearer(token)

    def _backend(self, name: str, fail: bool, healthy_when: pathlib.Path | None) -> Replica:
        replica = Replica("127.0.0.1", free_port(), free_port())
        argv = [sys.executable, str(BACKEND), "--name", name]
        argv += ["--rest-port", str(replica.rest_port), "--grpc-port", str(replica.grpc_port)]
        if fail:
            argv.append("--fail")
        if healthy_when is not None:
            argv += ["--healthy-when", str(healthy_when)]
        url = f"http://127.0.0.1:{replica.rest_port}/healthz"
        # Up means answering at all: a backend waiting for its health file answers 503.
        child = Child(name, argv, self.tmp / f"{name}.log", lambda: http_status(url)[0] != 0)
        child.start()
        self.children.append(child)
        self.backends[name], self.replicas[name] = child, replica
        return replica

    def start(
        self,
        gateways: tuple[str, ...] = ("gw0",),
        model_servers: tuple[str, ...] = ("ms0",),
        failing: tuple[str, ...] = (),
        gateways_healthy_when: pathlib.Path | None = None,
        **overrides: object,
    ) -> Proxy:
        """Start backends and Envoy; wait until Envoy counts every backend healthy, except
        gateways given ``gateways_healthy_when`` (unhealthy until that file exists)."""
        flag = gateways_healthy_when
        self.settings = ServingSettings().with_overrides(
            **{
                "envoy.port": free_port(),
                "envoy.admin_port": free_port(),
                "envoy.model_listener_port": free_port(),
                "envoy.metrics_port": free_port(),
                "auth.jwks_file": str(self.jwks),
                "envoy.concurrency": 1,
                **FAST_HEALTH,
                **overrides,
            }
        )
        envoy_settings = self.settings.envoy
        self.front = f"{LOOPBACK}:{envoy_settings.port}"
        self.model_listener = f"{LOOPBACK}:{envoy_settings.model_listener_port}"
        self.admin = f"http://{LOOPBACK}:{envoy_settings.admin_port}"
        topology = Topology(
            self.settings,
            gateways=tuple(self._backend(n, n in failing, flag) for n in gateways),
            model_servers=tuple(self._backend(n, n in failing, None) for n in model_servers),
        )
        for child in self.children:
            wait_until(child.ready, 30, f"test backend {child.name}")
        config = write_config(
            self.tmp / "envoy.yaml", self.settings, topology.upstreams, self.log_dir
        )
        envoy = Child(
            "envoy",
            [envoy_binary(), *command_lines.envoy_args(config, 1, "warning", hot_restart=False)],
            self.tmp / "envoy.log",
            lambda: http_status(f"{self.admin}/ready")[0] == 200,
        )
        envoy.start()
        self.children.append(envoy)
        wait_until(envoy.ready, 30, "envoy")
        expected = {
            CLUSTER_GATEWAY_REST: len(gateways) if flag is None else 0,
            CLUSTER_GATEWAY_GRPC: len(gateways) if flag is None else 0,
            CLUSTER_MODEL_GRPC: len(model_servers),
            CLUSTER_MODEL_REST: len(model_servers),
        }
        wait_until(
            lambda: all(self.healthy(c) == n for c, n in expected.items()),
            15,
            "every backend healthy in envoy",
        )
        return self

    @property
    def log_dir(self) -> pathlib.Path:
        return self.tmp / "logs"

    def log_records(self, name: str) -> list[dict]:
        """JSON lines Envoy has flushed to one of its log files so far."""
        path = self.log_dir / name
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def healthy(self, cluster: str) -> int:
        return healthy_members(self.settings.envoy.admin_port, cluster)

    def stop(self) -> None:
        for child in reversed(self.children):
            child.stop(timeout=5)


@pytest.fixture
def proxy(tmp_path: pathlib.Path):
    harness = Proxy(tmp_path)
    yield harness
    harness.stop()
