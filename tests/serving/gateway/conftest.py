"""Fixtures of the gateway tests: a real redis-server, the real `aiqleads-model-server` on
real SavedModels, a gateway in a thread.

One model server process serves the whole session (a TensorFlow start costs tens of seconds);
each test points `lead_recommender` at its own base path, and sets version labels, through
`HandleReloadConfigRequest`, and withdraws the model afterwards. The few tests that need a
model server they can slow down or kill use the in-process stub of `fixture_model_server.py`.
"""

from __future__ import annotations

import asyncio
import importlib.util
import pathlib
import shutil
import subprocess
import sys
import threading
import time

import pytest
import redis
import requests

from serving.process import LOOPBACK, free_port

ROOT = pathlib.Path(__file__).resolve().parents[3]
TF_SERVING_TESTDATA = ROOT.parent / "shared" / "testdata" / "tf_serving"
MODEL_NAME = "lead_recommender"
PLACEHOLDER = "half_plus_two"  # keeps the server's config non-empty between tests


def _load(name: str, path: pathlib.Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


recommend_model = _load("recommend_model", ROOT / "tests" / "fixtures" / "recommend_model.py")


class RedisProcess:
    """A real redis-server on a loopback port, stopped and restarted by PID."""

    def __init__(self, directory: pathlib.Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=1)


@pytest.fixture
def redis_server(tmp_path):
    server = RedisProcess(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def model_versions(tmp_path_factory) -> pathlib.Path:
    """Versions 1 and 2 of the fixture recommender, built once per session."""
    base = tmp_path_factory.mktemp("built_models")
    for version in (1, 2):
        recommend_model.build_recommend_model(base, version)
    return base


@pytest.fixture
def model_base(tmp_path, model_versions) -> pathlib.Path:
    """A model base path holding version 1 only; tests push version 2 with `push_version`."""
    base = tmp_path / "models" / MODEL_NAME
    base.mkdir(parents=True)
    shutil.copytree(model_versions / "1", base / "1")
    return base


def push_version(model_versions: pathlib.Path, base: pathlib.Path, version: int) -> None:
    shutil.copytree(model_versions / str(version), base / f".tmp-{version}")
    (base / f".tmp-{version}").rename(base / str(version))


class RealModelServer:
    """The session's `aiqleads-model-server`; `serve()` a base path as MODEL_NAME per test.

    `predict_calls` counts the inference calls on MODEL_NAME since `serve()`, from the
    server's own `:tensorflow:serving:request_count`.
    """

    def __init__(self, directory: pathlib.Path) -> None:
        from google.protobuf import text_format

        from serving.process import start_model_server

        self._models: dict[str, tuple[pathlib.Path, dict[str, int]]] = {
            PLACEHOLDER: (TF_SERVING_TESTDATA / "saved_model_half_plus_two_cpu", {})
        }
        config = directory / "models.config"
        config.write_text(text_format.MessageToString(self._config()))
        self.process = start_model_server(
            [
                f"--model_config_file={config}",
                f"--monitoring_config_file={TF_SERVING_TESTDATA / 'monitoring_config.txt'}",
                "--file_system_poll_wait_seconds=1",
            ],
            directory / "model_server.log",
        )
        try:
            self.process.wait_ready(PLACEHOLDER)
        except Exception:
            self.process.stop()
            raise
        self.port = self.process.grpc_port
        self._baseline = 0.0

    def _config(self):
        from tensorflow_serving.config import model_server_config_pb2

        config = model_server_config_pb2.ModelServerConfig()
        for name, (base, labels) in self._models.items():
            model = config.model_config_list.config.add(
                name=name, base_path=str(base), model_platform="tensorflow"
            )
            model.model_version_policy.all.SetInParent()  # every version on disk, like TF
            model.version_labels.update(labels)  # Serving with `all {}`; labels need them
        return config

    def _reload(self) -> None:
        import grpc
        from tensorflow_serving.apis import model_management_pb2, model_service_pb2_grpc

        request = model_management_pb2.ReloadConfigRequest(config=self._config())
        with grpc.insecure_channel(f"127.0.0.1:{self.port}") as channel:
            stub = model_service_pb2_grpc.ModelServiceStub(channel)
            stub.HandleReloadConfigRequest(request, timeout=240)

    def serve(self, base: pathlib.Path) -> None:
        """Serve `base` as MODEL_NAME (all versions, no labels) from now on."""
        self._models[MODEL_NAME] = (base, {})
        self._reload()
        self._baseline = self._request_count()

    def set_labels(self, labels: dict[str, int]) -> None:
        """Replace MODEL_NAME's version labels (the versions must be loaded)."""
        self._models[MODEL_NAME] = (self._models[MODEL_NAME][0], dict(labels))
        self._reload()

    def withdraw(self) -> None:
        """Unload MODEL_NAME (the next test serves a fresh one)."""
        self._models.pop(MODEL_NAME, None)
        self._reload()

    def _request_count(self) -> float:
        text = requests.get(
            f"{self.process.rest_url}/monitoring/prometheus/metrics", timeout=30
        ).text
        prefix = f':tensorflow:serving:request_count{{model_name="{MODEL_NAME}"'
        return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(prefix))

    @property
    def predict_calls(self) -> float:
        return self._request_count() - self._baseline


@pytest.fixture(scope="session")
def real_model_server(tmp_path_factory):
    server = RealModelServer(tmp_path_factory.mktemp("model_server"))
    yield server
    server.process.stop()


@pytest.fixture
def model_server(real_model_server, model_base):
    """The real model server, serving this test's `model_base` as MODEL_NAME."""
    real_model_server.serve(model_base)
    yield real_model_server
    real_model_server.withdraw()


def _stub_model_server(model_base: pathlib.Path):
    stub = _load(
        "fixture_model_server", pathlib.Path(__file__).with_name("fixture_model_server.py")
    )
    server = stub.FixtureModelServer(MODEL_NAME, model_base)
    server.start()
    return server


@pytest.fixture
def stub_model_server(model_base):
    """An in-process model server stub the test can slow down (`predict_delay`) or stop."""
    server = _stub_model_server(model_base)
    yield server
    server.stop()


@pytest.fixture
def spare_model_server(model_base):
    """A second stub replica on the same base path."""
    server = _stub_model_server(model_base)
    yield server
    server.stop()


class GatewayThread:
    """One in-process gateway replica running on its own event loop in a thread."""

    def __init__(self, config) -> None:
        from serving.gateway.server import Gateway

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.gateway = self.call(self._build(Gateway, config))
        self.call(self.gateway.start())
        # Ports are known once it started (0 in the config picks free ones).
        self.url = f"http://{LOOPBACK}:{self.gateway.rest_port}"
        self.grpc_target = f"{LOOPBACK}:{self.gateway.grpc_port}"

    @staticmethod
    async def _build(cls, config):
        return cls(config)

    def call(self, coro, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        if self.loop.is_closed():  # stopped by the test already
            return
        self.call(self.gateway.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@pytest.fixture
def attribution_key_file(tmp_path) -> pathlib.Path:
    """The request-id signing key every gateway of a test shares, as the launcher makes it."""
    from aiqleads.events import attribution

    return attribution.create_key_file(tmp_path / "secrets" / "attribution.key")


@pytest.fixture
def start_gateway(redis_server, model_server, event_store, attribution_key_file):
    """Factory: start a gateway on free ports against the test Redis, model server and event
    store."""
    from serving.gateway.config import parse_config

    started = []

    def start(**overrides) -> GatewayThread:
        settings = {
            "rest_port": 0,
            "grpc_port": 0,
            "redis_url": redis_server.url,
            "model_servers": (f"127.0.0.1:{model_server.port}",),
            "model_name": MODEL_NAME,
            "version_refresh_seconds": 0.2,
            "event_store_url": event_store.url,
            "attribution_key_file": attribution_key_file,
            # Generous: the client threads share this process with the gateway, and with a
            # delayed model call in flight the waiting requests must not time out on a slow CI.
            "model_timeout_ms": 15_000,
            # The Redis tier on its own (what most tests here are about); the tests of the
            # in-process tier in front of it turn it on.
            "local_cache_entries": 0,
            **overrides,
        }
        gateway = GatewayThread(parse_config(settings))
        started.append(gateway)
        deadline = time.monotonic() + 20
        while not gateway.gateway.dataplane.ready:
            assert time.monotonic() < deadline, "the gateway never learned a model version"
            time.sleep(0.02)
        return gateway

    yield start
    for gateway in started:
        gateway.stop()


@pytest.fixture
def push(model_versions, model_base):
    """Push a built version of the fixture model into the served base path."""
    return lambda version: push_version(model_versions, model_base, version)


@pytest.fixture
def expected():
    """`expected(user_id, k, version, with_location=False)`: the JSON items, derived by hand."""

    def items(user_id: str, k: int, version: int, with_location: bool = False) -> list[dict]:
        return [
            {"lead_id": lead, "score": pytest.approx(score, abs=1e-6)}
            for lead, score in recommend_model.expected_items(user_id, k, version, with_location)
        ]

    return items


@pytest.fixture
def recommend():
    """`recommend(gateway, **body)`: POST /v1/recommendations, asserting 200."""
    import requests

    def call(gateway, **body) -> dict:
        response = requests.post(f"{gateway.url}/v1/recommendations", json=body, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()

    return call
