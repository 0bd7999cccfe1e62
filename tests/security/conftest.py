"""A real stack (`ServingStack`: Redis, a model server, two gateways, Envoy, the event store)
on free loopback ports with authentication on, and tokens of its own key pair."""

from __future__ import annotations

import json
import pathlib
import re
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass

import pytest

from serving import auth
from serving.launcher import ServingStack
from serving.settings import ServingSettings

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "fixtures"))
# Small per-client buckets so that the fairness test floods one quickly; the global
# backstop stays far above what any test sends.
CLIENT_RATE, CLIENT_BURST = 100, 150
# In an argument: a password placeholder the kubelet would expand, a Redis password flag, or
# a URL with credentials (scheme://user:password@).
SECRET_IN_ARGUMENT = re.compile(
    r"\$\([A-Z_]*(PASSWORD|KEY|TOKEN)[A-Z_]*\)|--requirepass|://[^/\s]*:[^/\s]*@"
)


@pytest.fixture(scope="session")
def security_model_base(tmp_path_factory) -> pathlib.Path:
    from recommend_model import build_recommend_model

    base = tmp_path_factory.mktemp("security-models") / "lead_recommender"
    build_recommend_model(base, version=1)
    return base


@dataclass
class Stack:
    stack: ServingStack

    @property
    def settings(self) -> ServingSettings:
        return self.stack.settings

    @property
    def front(self) -> str:
        return f"127.0.0.1:{self.settings.envoy.port}"

    @property
    def signing_key(self) -> pathlib.Path:
        assert self.stack.credentials is not None
        return self.stack.credentials.signing_key

    def token(
        self,
        scopes: tuple[str, ...] = auth.SCOPES,
        users: tuple[str, ...] = (auth.ALL_USERS,),
        subject: str = "tester",
        lifetime: float = 600,
    ) -> str:
        return auth.issue_token(self.signing_key, subject, scopes, users, lifetime)

    def post(
        self, path: str, body: object, token: str | None = None, raw: bytes | None = None
    ) -> tuple[int, dict, dict]:
        headers = {"content-type": "application/json"}
        if token is not None:
            headers.update(auth.bearer(token))
        data = raw if raw is not None else json.dumps(body).encode()
        request = urllib.request.Request(f"http://{self.front}{path}", data, headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                return resp.status, json.loads(resp.read()), dict(resp.headers)
        except urllib.error.HTTPError as e:
            payload = e.read()
            try:
                decoded = json.loads(payload)
            except ValueError:
                decoded = {"raw": payload.decode(errors="replace")}
            return e.code, decoded, dict(e.headers)


@pytest.fixture(scope="session")
def secure_stack(security_model_base: pathlib.Path, tmp_path_factory) -> Stack:
    run_dir = tmp_path_factory.mktemp("security-stack")
    settings = ServingSettings().with_overrides(
        **{
            "model_base_path": str(security_model_base),
            "run_dir": str(run_dir),
            "envoy.port": 0,
            "monitoring": False,
            "model_servers.replicas": 1,
            "gateways.replicas": 2,
            "envoy.health_check.interval_ms": 500,
            # Deadlines sized for a loaded 2-core machine: fuzzed requests are cache misses,
            # and a slow model call must not turn into a 503 the fuzzers would count.
            "envoy.request_timeout_ms": 10_000,
            "envoy.per_try_timeout_ms": 4000,
            "gateways.model_timeout_ms": 3000,
            "auth.client_rate_limit.requests_per_second": CLIENT_RATE,
            "auth.client_rate_limit.burst": CLIENT_BURST,
            # A short allowance, so that a token's expiry is seen within seconds.
            "auth.clock_skew_seconds": 1,
        }
    )
    stack = ServingStack(settings, progress=lambda line: None)
    stack.start()
    try:
        yield Stack(stack)
    finally:
        stack.stop()
