"""End to end: `python -m serving.gateway` in front of the real `aiqleads-model-server`.

Both run as subprocesses on free loopback ports with a real redis-server; the model server
watches a base path into which the test pushes version 2 of the fixture model.
"""

from __future__ import annotations

import os
import pathlib
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from serving.process import free_port
from serving.protos.generated import recommendations_pb2 as pb
from serving.protos.generated import recommendations_pb2_grpc as pb_grpc

pytestmark = pytest.mark.e2e
MODEL_SERVER = pathlib.Path(sys.executable).with_name("aiqleads-model-server")
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def _wait_http(url: str, process: subprocess.Popen, log: pathlib.Path, timeout: float = 240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"{process.args[:3]} exited {process.returncode}:\n{log.read_text()[-3000:]}"
            )
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.25)
    pytest.fail(f"{url} never became healthy:\n{log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    return process.returncode


def _metric(url: str, line_start: str) -> float:
    text = requests.get(url, timeout=5).text
    values = [float(x.split()[-1]) for x in text.splitlines() if x.startswith(line_start)]
    return sum(values)


@pytest.fixture
def stack(tmp_path, redis_server, model_base, event_store, attribution_key_file):
    if not MODEL_SERVER.exists():
        pytest.skip("aiqleads-model-server is not installed")
    ports = {name: free_port() for name in ("ms_grpc", "ms_rest", "gw_rest", "gw_grpc")}
    ms_log, gw_log = tmp_path / "model_server.log", tmp_path / "gateway.log"
    model_server = subprocess.Popen(
        [str(MODEL_SERVER), f"--port={ports['ms_grpc']}", f"--rest_api_port={ports['ms_rest']}",
         "--host=127.0.0.1", "--model_name=lead_recommender", f"--model_base_path={model_base}",
         "--file_system_poll_wait_seconds=1"],
        stdout=ms_log.open("wb"), stderr=subprocess.STDOUT, env=ENV,
    )  # fmt: skip
    gateway = subprocess.Popen(
        [sys.executable, "-m", "serving.gateway", "--host", "127.0.0.1",
         "--rest-port", str(ports["gw_rest"]), "--grpc-port", str(ports["gw_grpc"]),
         "--redis-url", redis_server.url, "--model-server", f"127.0.0.1:{ports['ms_grpc']}",
         "--model-name", "lead_recommender", "--event-store-url", event_store.url,
         "--attribution-key-file", str(attribution_key_file),
         "--model-timeout-ms", "3000", "--version-refresh-seconds", "0.5"],
        stdout=gw_log.open("wb"), stderr=subprocess.STDOUT, env=ENV,
    )  # fmt: skip
    try:
        _wait_http(
            f"http://127.0.0.1:{ports['ms_rest']}/v1/models/lead_recommender", model_server, ms_log
        )
        _wait_http(f"http://127.0.0.1:{ports['gw_rest']}/healthz", gateway, gw_log)
        yield {"ports": ports, "gateway": gateway, "gateway_log": gw_log}
    finally:
        _stop(gateway)
        _stop(model_server)


def test_gateway_over_the_real_model_server(stack, push, expected):
    ports = stack["ports"]
    base = f"http://127.0.0.1:{ports['gw_rest']}"
    calls = 'aiqleads_gateway_model_calls_total{method="recommend",outcome="ok"}'

    def ask(user: str, k: int) -> dict:
        response = requests.post(
            f"{base}/v1/recommendations", json={"user_id": user, "k": k}, timeout=10
        )
        assert response.status_code == 200, response.text
        return response.json()

    first, second = ask("alice", 3), ask("alice", 3)
    assert (first["cached"], second["cached"]) == (False, True)
    assert first["items"] == second["items"] == expected("alice", 3, 1)
    assert _metric(f"{base}/metrics", calls) == 1

    with ThreadPoolExecutor(max_workers=50) as pool:
        crowd = list(pool.map(lambda _: ask("quentin", 5), range(50)))
    assert all(a["items"] == expected("quentin", 5, 1) for a in crowd)
    assert _metric(f"{base}/metrics", calls) == 2  # fifty identical requests, one model call
    timed = 'aiqleads_gateway_model_call_seconds_count{method="recommend"}'
    assert _metric(f"{base}/metrics", timed) == 2  # each model call timed once

    import grpc

    with grpc.insecure_channel(f"127.0.0.1:{ports['gw_grpc']}") as channel:
        reply = pb_grpc.RecommendationsStub(channel).Recommend(
            pb.RecommendRequest(user_id="alice", k=3), timeout=10
        )
    assert reply.cached and reply.model_version == 1

    push(2)
    deadline = time.monotonic() + 60
    while (answer := ask("alice", 3))["model_version"] != 2:
        assert time.monotonic() < deadline, "the gateway never served version 2"
        time.sleep(0.2)
    assert answer["cached"] is False
    assert answer["items"] == expected("alice", 3, 2)

    gateway = stack["gateway"]
    gateway.send_signal(signal.SIGTERM)
    assert gateway.wait(timeout=20) == 0
    log = stack["gateway_log"].read_text()
    assert re.search(r"gateway ready rest=http://127\.0\.0\.1:\d+ grpc=127\.0\.0\.1:\d+", log)
    assert "gateway stopped" in log


def test_gateway_flags_are_validated_with_one_line_errors():
    result = subprocess.run(
        [sys.executable, "-m", "serving.gateway", "--model-server", "nohostport",
         "--canary-fraction", "2"],
        capture_output=True, text=True, timeout=120, env=ENV,
    )  # fmt: skip
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: invalid gateway settings: ")
    assert "model_servers" in result.stderr and "canary_fraction" in result.stderr
