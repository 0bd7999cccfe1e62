"""Redis down and back: the gateway serves uncached without a single error, then recovers."""

from __future__ import annotations

import signal
import time

import requests


def _metric(gateway, name: str) -> str:
    text = requests.get(f"{gateway.url}/metrics", timeout=5).text
    return "\n".join(line for line in text.splitlines() if line.startswith(name))


def test_redis_down_and_back_with_zero_failed_requests(
    start_gateway, redis_server, model_server, recommend, expected
):
    gateway = start_gateway()
    assert recommend(gateway, user_id="gina", k=3)["cached"] is False
    assert recommend(gateway, user_id="gina", k=3)["cached"] is True
    assert requests.get(f"{gateway.url}/healthz", timeout=5).json() == {"status": "serving"}

    redis_server.stop()
    calls_before = model_server.predict_calls
    down = [recommend(gateway, user_id="gina", k=3) for _ in range(30)]
    assert all(a["cached"] is False and a["items"] == expected("gina", 3, 1) for a in down)
    assert model_server.predict_calls == calls_before + 30
    health = requests.get(f"{gateway.url}/healthz", timeout=5)
    assert health.status_code == 200
    assert health.json() == {"status": "degraded: Redis is unreachable, serving uncached"}
    assert _metric(gateway, "aiqleads_gateway_redis_up") == "aiqleads_gateway_redis_up 0.0"
    assert "aiqleads_gateway_cache_errors_total" in _metric(
        gateway, "aiqleads_gateway_cache_errors"
    )

    redis_server.start()  # same port, empty data
    deadline = time.monotonic() + 15
    while not recommend(gateway, user_id="gina", k=3)["cached"]:
        assert time.monotonic() < deadline, "the gateway never went back to the cache"
        time.sleep(0.1)
    assert _metric(gateway, "aiqleads_gateway_redis_up") == "aiqleads_gateway_redis_up 1.0"
    assert requests.get(f"{gateway.url}/healthz", timeout=5).json() == {"status": "serving"}
    errors = _metric(gateway, 'aiqleads_gateway_requests_total{code="5')
    assert errors == "", errors


def test_gateway_starts_and_serves_while_redis_is_down(
    start_gateway, redis_server, model_server, recommend, expected
):
    redis_server.stop()
    gateway = start_gateway()
    answer = recommend(gateway, user_id="hank", k=2)
    assert (answer["cached"], answer["items"]) == (False, expected("hank", 2, 1))
    assert requests.get(f"{gateway.url}/healthz", timeout=5).status_code == 200


def test_a_hung_redis_times_out_and_the_circuit_opens(
    start_gateway, redis_server, model_server, recommend, expected
):
    gateway = start_gateway()
    recommend(gateway, user_id="ivan", k=2)
    redis_server.process.send_signal(signal.SIGSTOP)  # accepts connections, never answers
    try:
        answers = [recommend(gateway, user_id="ivan", k=2) for _ in range(20)]
        skipped = _metric(gateway, 'aiqleads_gateway_cache_errors_total{operation="get_or_lock"}')
        shared = _metric(gateway, 'aiqleads_gateway_cache_coalesced_total{kind="recommend"}')
    finally:
        redis_server.process.send_signal(signal.SIGCONT)
    assert all(a["cached"] is False and a["items"] == expected("ivan", 2, 1) for a in answers)
    # Every request still asked for the key, but the open circuit answered most of them
    # without touching Redis; the timed-out calls are counted too. A request that came
    # while the previous answer's store was timing out shared that answer instead.
    lookups = float(skipped.split()[-1]) + (float(shared.split()[-1]) if shared else 0.0)
    assert lookups >= 20, (skipped, shared)
    deadline = time.monotonic() + 15
    while not recommend(gateway, user_id="ivan", k=2)["cached"]:
        assert time.monotonic() < deadline, "the gateway never went back to the cache"
        time.sleep(0.1)
