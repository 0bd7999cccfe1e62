"""Small units: circuit breaker, variant assignment and label fallback, config, log rotation."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from aiqleads.errors import ConfigError
from serving.errors import Code, Reason, ServingError, invalid, not_found, unavailable
from serving.gateway.cache import CircuitBreaker, LocalCache, RedisCache, Source
from serving.gateway.config import parse_config
from serving.gateway.metrics import GatewayMetrics, error_kind
from serving.gateway.protocol.rest import http_status
from serving.gateway.variants import VersionView, assign_variant
from serving.process import free_port


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_circuit_breaker_opens_with_doubling_backoff_and_allows_one_trial():
    clock = Clock()
    breaker = CircuitBreaker(min_backoff=0.5, max_backoff=2.0, clock=clock)
    assert breaker.allow() and breaker.is_closed
    breaker.record_failure()  # open for 0.5 s
    assert not breaker.allow()
    clock.now += 0.5
    assert breaker.allow()  # the one trial
    assert not breaker.allow()  # no second call while the trial runs
    breaker.record_failure()  # open for 1.0 s
    clock.now += 0.9
    assert not breaker.allow()
    clock.now += 0.1
    assert breaker.allow()
    breaker.record_failure()  # 2.0 s (capped)
    clock.now += 2.0
    assert breaker.allow()
    breaker.record_failure()  # still 2.0 s, not 4.0
    clock.now += 2.0
    assert breaker.allow()
    breaker.record_success()
    assert breaker.is_closed and breaker.allow() and breaker.allow()


def test_variant_assignment_is_a_deterministic_hash_split():
    assert assign_variant("anyone", 0.0) == "stable"
    assert assign_variant("anyone", 1.0) == "canary"
    # sha256("alice") starts with 2bd806c9...: bucket 0x2bd806c97f0e00af / 2**64 = 0.1713...
    assert hashlib.sha256(b"alice").hexdigest().startswith("2bd806c9")
    assert assign_variant("alice", 0.18) == "canary"
    assert assign_variant("alice", 0.17) == "stable"
    users = [f"user-{i}" for i in range(2000)]
    share = sum(assign_variant(u, 0.25) == "canary" for u in users) / len(users)
    assert 0.22 < share < 0.28


def test_labels_resolve_and_fall_back_to_the_latest_version_as_stable():
    both = VersionView(latest=5, labels=(("stable", 3), ("canary", 4)))
    assert both.resolve("stable") == ("stable", 3)
    assert both.resolve("canary") == ("canary", 4)
    only_stable = VersionView(latest=5, labels=(("stable", 3),))
    assert only_stable.resolve("canary") == ("stable", 3)
    no_labels = VersionView(latest=5)
    assert no_labels.resolve("canary") == ("stable", 5)
    with pytest.raises(ServingError, match="no model version is available yet") as error:
        VersionView().resolve("stable")
    assert error.value.code == Code.UNAVAILABLE


def test_config_rejects_bad_values_naming_each_field():
    with pytest.raises(ConfigError) as error:
        parse_config(
            {"model_servers": ("nohostport",), "canary_fraction": 1.5, "redis_url": "http://x"}
        )
    message = str(error.value)
    for field in ("model_servers", "canary_fraction", "redis_url"):
        assert field in message
    with pytest.raises(ConfigError, match="unknown_flag"):
        parse_config({"unknown_flag": 1})
    config = parse_config({"model_servers": ("127.0.0.1:1", "127.0.0.1:2")})
    assert config.grpc_target == "ipv4:127.0.0.1:1,127.0.0.1:2"
    assert parse_config({"model_servers": ("envoy.local:9000",)}).grpc_target == "envoy.local:9000"
    with pytest.raises(ConfigError, match="with several servers give IPv4 addresses"):
        parse_config({"model_servers": ("a.local:1", "127.0.0.1:2")})


def test_local_cache_is_a_bounded_lru_with_a_ttl() -> None:
    now = [0.0]
    cache = LocalCache(max_entries=2, ttl_seconds=10, clock=lambda: now[0])
    cache.put("a", b"1")
    cache.put("b", b"2")
    assert cache.get("a") == b"1"  # "a" is now the most recently used
    cache.put("c", b"3")  # evicts the least recently used: "b"
    assert (cache.get("a"), cache.get("b"), cache.get("c"), len(cache)) == (b"1", None, b"3", 2)
    now[0] = 9.9
    assert cache.get("c") == b"3"
    now[0] = 10.0
    assert (cache.get("a"), cache.get("c"), len(cache)) == (None, None, 0)
    with pytest.raises(ValueError):
        LocalCache(max_entries=0, ttl_seconds=1)


def test_local_cache_ttl_may_not_exceed_the_redis_ttl() -> None:
    with pytest.raises(ConfigError, match="local_cache_ttl_seconds"):
        parse_config({"cache_ttl_seconds": 5, "local_cache_ttl_seconds": 6})


def test_a_failed_store_is_counted_under_its_own_operation() -> None:
    # Nothing listens on the port: Redis is down. The store fails and opens the circuit;
    # the `set` after it is skipped by the open circuit, counted under its own label.
    metrics = GatewayMetrics()
    cache = RedisCache(f"redis://127.0.0.1:{free_port()}/0", 60, metrics, timeout_seconds=0.5)

    async def scenario() -> tuple[bool, None]:
        try:
            return await cache.store_and_unlock("k", b"v", unlock=True), await cache.set("k", b"v")
        finally:
            await cache.close()

    assert asyncio.run(scenario()) == (False, None)
    text = metrics.render().decode()
    assert 'aiqleads_gateway_cache_errors_total{operation="store_and_unlock"} 1.0' in text
    assert 'aiqleads_gateway_cache_errors_total{operation="set"} 1.0' in text


def test_each_error_has_one_rest_status_grpc_code_and_metric_kind() -> None:
    cases = [  # (error, REST status, metric kind): the answers the gateway has always given
        (invalid("bad k"), 400, "invalid"),
        (not_found("no such version"), 404, "not_found"),
        (unavailable("model servers down"), 503, "unavailable"),
        (ServingError(Code.INVALID_ARGUMENT, "big", Reason.BODY_TOO_LARGE), 413, "too_large"),
        (ServingError(Code.INVALID_ARGUMENT, "form", Reason.NOT_JSON), 415, "media_type"),
        (ServingError(Code.INVALID_ARGUMENT, "label", Reason.UPSTREAM_REJECTED), 400, "rejected"),
        (ServingError(Code.FAILED_PRECONDITION, "x", Reason.UPSTREAM_REJECTED), 400, "rejected"),
    ]
    for error, status, kind in cases:
        assert (http_status(error), error_kind(error)) == (status, kind), error.message
    assert Source.HIT == "hit" and str(Source.COALESCED) == "coalesced"  # the metric labels
