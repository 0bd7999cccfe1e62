"""Through a real Envoy: routing, REST and gRPC on one listener, health checks, retries, 429s."""

from __future__ import annotations

import json
import signal
import urllib.error
import urllib.request

import grpc
import pytest

from serving.envoy.config import ACCESS_LOG, HEALTH_LOG
from serving.envoy.runtime import admin_stats
from serving.process import wait_until

RECOMMEND = "/aiqleads.recommendations.v1.Recommendations/Recommend"
HEADERS: dict[str, str] = {}  # the proxy's bearer token, sent on every call


@pytest.fixture(autouse=True)
def _authenticated(proxy) -> None:
    HEADERS.clear()
    HEADERS.update(proxy.auth_headers)


PREDICT = "/tensorflow.serving.PredictionService/Predict"


def _post(address: str, path: str, body: dict | None = None) -> tuple[int, dict, dict]:
    request = urllib.request.Request(
        f"http://{address}{path}",
        data=json.dumps(body or {}).encode(),
        headers={"content-type": "application/json", **HEADERS},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, json.loads(resp.read()), dict(resp.headers)
    except urllib.error.HTTPError as e:
        raw = e.read()
        return e.code, (json.loads(raw) if raw.startswith(b"{") else {}), dict(e.headers)


def _get(address: str, path: str) -> tuple[int, bytes]:
    try:
        request = urllib.request.Request(f"http://{address}{path}", headers=HEADERS)
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _grpc(address: str, method: str) -> str:
    with grpc.insecure_channel(address) as channel:
        call = channel.unary_unary(method)
        return call(b"request", timeout=5, metadata=tuple(HEADERS.items())).decode()


def _counter(proxy, name: str) -> int:
    return admin_stats(proxy.settings.envoy.admin_port, f"^{name}$").get(name, 0)


def test_each_route_reaches_its_cluster_rest_and_grpc_on_one_listener(proxy) -> None:
    proxy.start(gateways=("gw0",), model_servers=("ms0",))
    # REST on the front listener goes to the gateway's REST port.
    for path in ("/v1/recommendations", "/v1/feedback", "/v1/models/lead_recommender:predict"):
        status, body, _ = _post(proxy.front, path, {"user_id": "u1"})
        assert (status, body["backend"], body["path"]) == (200, "gw0", path)
    status, body = _get(proxy.front, "/v1/models/lead_recommender")
    assert status == 200 and json.loads(body)["backend"] == "gw0"
    # gRPC (HTTP/2) on the same port goes to the gateway's gRPC port.
    assert _grpc(proxy.front, RECOMMEND) == f"gw0|{RECOMMEND}"
    assert _grpc(proxy.front, PREDICT) == f"gw0|{PREDICT}"
    assert _counter(proxy, "cluster.gateway_rest.upstream_rq_200") == 4
    assert _counter(proxy, "cluster.gateway_grpc.upstream_rq_200") == 2
    # The internal listener takes the gateways to the model servers, gRPC and REST.
    assert _grpc(proxy.model_listener, PREDICT) == f"ms0|{PREDICT}"
    status, body = _get(proxy.model_listener, "/v1/models/lead_recommender")
    assert status == 200 and json.loads(body)["backend"] == "ms0"
    assert _counter(proxy, "cluster.model_server_grpc.upstream_rq_200") == 1
    # Envoy answers its own ping; anything unrouted is a 404 that never reaches a backend.
    assert _get(proxy.front, "/ping") == (200, b"ok")
    assert _get(proxy.front, "/admin")[0] == 404
    assert _post(proxy.front, "/v1/unknown")[0] == 404
    with pytest.raises(grpc.RpcError) as err:
        _grpc(proxy.front, "/some.Other/Method")
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_health_checks_remove_a_dead_replica(proxy) -> None:
    proxy.start(gateways=("gw0", "gw1"))
    served = {_post(proxy.front, "/v1/recommendations")[1]["backend"] for _ in range(20)}
    assert served == {"gw0", "gw1"}
    proxy.backends["gw0"].signal(signal.SIGKILL)
    # Two failed checks at 100 ms intervals take the replica out of both gateway clusters.
    wait_until(lambda: proxy.healthy("gateway_rest") == 1, 5, "gw0 removal")
    wait_until(lambda: proxy.healthy("gateway_grpc") == 1, 5, "gw0 removal (grpc)")
    retries = _counter(proxy, "cluster.gateway_rest.upstream_rq_retry")
    results = [_post(proxy.front, "/v1/recommendations") for _ in range(50)]
    assert [(s, b["backend"]) for s, b, _ in results] == [(200, "gw1")] * 50
    assert {_grpc(proxy.front, RECOMMEND) for _ in range(20)} == {f"gw1|{RECOMMEND}"}
    # No retry was needed: the dead host was out of rotation, not merely retried around.
    assert _counter(proxy, "cluster.gateway_rest.upstream_rq_retry") == retries
    # Envoy's health-event log names the removed replica, for the operator.
    gw0_port = proxy.replicas["gw0"].rest_port

    def gw0_ejected() -> bool:
        return any(
            "eject_unhealthy_event" in e and e["host"]["socket_address"]["port_value"] == gw0_port
            for e in proxy.log_records(HEALTH_LOG)
        )

    wait_until(gw0_ejected, 10, "the health-event log to record gw0's removal")


def test_replicas_turning_healthy_together_all_take_requests_at_once(proxy, tmp_path) -> None:
    # A starting stack's gateways turn healthy in the same health-check round, once the
    # model servers answer. With Envoy's default 1 s update_merge_window the admin API counted
    # both at once while the load balancer saw only one for that second: every request went
    # to it, and its crash left the retries no other host (the serve e2e flake).
    flag = tmp_path / "healthy"
    proxy.start(gateways=("gw0", "gw1"), gateways_healthy_when=flag)
    assert proxy.healthy("gateway_rest") == proxy.healthy("gateway_grpc") == 0
    flag.touch()
    wait_until(
        lambda: proxy.healthy("gateway_rest") == proxy.healthy("gateway_grpc") == 2,
        10,
        "both gateways healthy in Envoy's admin view",
        interval=0.01,
    )
    served = [_post(proxy.front, "/v1/recommendations")[1]["backend"] for _ in range(20)]
    assert set(served) == {"gw0", "gw1"}, served
    assert {_grpc(proxy.front, RECOMMEND) for _ in range(20)} == {
        f"gw0|{RECOMMEND}",
        f"gw1|{RECOMMEND}",
    }


def test_a_failing_replica_is_retried_on_another_host(proxy) -> None:
    # gw0 passes health checks but answers 503 / UNAVAILABLE to every request.
    proxy.start(gateways=("gw0", "gw1"), failing=("gw0",))
    results = [_post(proxy.front, "/v1/recommendations") for _ in range(30)]
    assert [(s, b["backend"]) for s, b, _ in results] == [(200, "gw1")] * 30
    assert {_grpc(proxy.front, PREDICT) for _ in range(20)} == {f"gw1|{PREDICT}"}
    assert _counter(proxy, "cluster.gateway_rest.upstream_rq_retry") >= 1
    assert _counter(proxy, "cluster.gateway_rest.upstream_rq_retry_success") >= 1
    # The access log says which replica answered each request and after how many tries.
    gw1 = f"127.0.0.1:{proxy.replicas['gw1'].rest_port}"

    def rest_records() -> list[dict]:
        return [r for r in proxy.log_records(ACCESS_LOG) if r["path"] == "/v1/recommendations"]

    wait_until(lambda: len(rest_records()) == 30, 10, "30 access-log lines")
    records = rest_records()
    assert {(r["status"], r["upstream"], r["cluster"]) for r in records} == {
        (200, gw1, "gateway_rest")
    }
    # The retried ones went to gw0 first. Envoy re-picks a host its retry predicate rejects
    # at most 5 times (host_selection_retry_max_attempts), so now and then a retry lands on
    # gw0 again: 3 tries, the most num_retries 2 allows.
    attempts = [r["attempts"] for r in records]
    assert max(attempts) in (2, 3) and min(attempts) == 1, attempts


def test_local_rate_limit_answers_429_past_the_limit(proxy) -> None:
    proxy.start(**{"envoy.rate_limit.requests_per_second": 5, "envoy.rate_limit.burst": 5})
    statuses = []
    for _ in range(20):
        status, _, headers = _post(proxy.front, "/v1/recommendations")
        statuses.append(status)
        if status == 429:
            assert headers.get("x-aiqleads-rate-limited") == "true"
    # 5 tokens at the start, at most 5 more if a one-second refill lands mid-burst.
    assert 5 <= statuses.count(200) <= 10
    assert statuses.count(429) == 20 - statuses.count(200)
    assert statuses[:5] == [200] * 5
    with pytest.raises(grpc.RpcError) as err:
        for _ in range(10):
            _grpc(proxy.front, RECOMMEND)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
