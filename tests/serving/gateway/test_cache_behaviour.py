"""The gateway's cache against a real Redis: hits, misses, versioned keys, TTL, single-flight."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from serving.gateway.validation import RecommendRequest
from serving.process import wait_until


def test_miss_then_hit_returns_the_models_answer_and_calls_it_once(
    start_gateway, model_server, recommend, expected
):
    gateway = start_gateway()
    first = recommend(gateway, user_id="alice", k=3)
    # "alice" has 5 characters: under version 1, lead i scores ((7i + 3 + 5) mod 10) / 10,
    # so lead-06 scores 0.0 ... lead-03 scores 0.9, lead-00 0.8 and lead-07 0.7.
    assert first["items"] == [
        {"lead_id": "lead-03", "score": pytest.approx(0.9)},
        {"lead_id": "lead-00", "score": pytest.approx(0.8)},
        {"lead_id": "lead-07", "score": pytest.approx(0.7)},
    ]
    assert (first["model_version"], first["variant"], first["cached"]) == (1, "stable", False)
    second = recommend(gateway, user_id="alice", k=3)
    assert second["cached"] is True
    assert second["items"] == first["items"]
    assert second["request_id"] != first["request_id"]
    assert model_server.predict_calls == 1


def test_every_input_is_part_of_the_key(start_gateway, model_server, recommend, expected):
    gateway = start_gateway()
    recommend(gateway, user_id="alice", k=3)
    other_k = recommend(gateway, user_id="alice", k=2)
    other_user = recommend(gateway, user_id="bob", k=3)
    located = recommend(gateway, user_id="alice", k=3, latitude=40.7, longitude=-74.0)
    assert [r["cached"] for r in (other_k, other_user, located)] == [False, False, False]
    assert other_user["items"] == expected("bob", 3, 1)
    assert located["items"] == expected("alice", 3, 1, with_location=True)
    assert model_server.predict_calls == 4


def _stored_keys(redis_server, count: int) -> list[bytes]:
    """The answer keys in Redis once ``count`` are there: a miss's answer goes back to the
    client first and reaches Redis just after, from the gateway's background store. Until
    then the key's fill lock (`<key>:lock`) is there instead, so it does not count."""
    found: list[bytes] = []

    def stored() -> bool:
        keys = redis_server.client().keys("aiqleads:gw:v1:rec:*")
        found[:] = [k for k in keys if not k.endswith(b":lock")]
        return len(found) >= count

    wait_until(stored, 5, f"{count} answer(s) stored in Redis", interval=0.01)
    return found


def test_new_model_version_changes_the_key_and_serves_fresh_results(
    start_gateway, push, redis_server, recommend, expected
):
    gateway = start_gateway()
    assert recommend(gateway, user_id="carol", k=4)["items"] == expected("carol", 4, 1)
    assert recommend(gateway, user_id="carol", k=4)["cached"] is True
    push(2)  # the model server finds it within its 1 s file-system poll, then loads it
    deadline = time.monotonic() + 60
    while (answer := recommend(gateway, user_id="carol", k=4))["model_version"] != 2:
        assert time.monotonic() < deadline, "the gateway never noticed version 2"
        time.sleep(0.05)
    assert answer["cached"] is False
    assert answer["items"] == expected("carol", 4, 2)
    assert answer["items"] != expected("carol", 4, 1)
    keys = sorted(k.decode() for k in _stored_keys(redis_server, 2))
    assert [k.split(":")[4:6] for k in keys] == [
        [("lead_recommender"), "1"],
        ["lead_recommender", "2"],
    ]


def test_entries_expire_after_the_ttl(start_gateway, redis_server, recommend):
    gateway = start_gateway(cache_ttl_seconds=7)
    recommend(gateway, user_id="dave", k=2)
    (key,) = _stored_keys(redis_server, 1)
    assert 0 < redis_server.client().ttl(key) <= 7


def test_fifty_concurrent_identical_requests_make_one_model_call(
    start_gateway, stub_model_server, recommend, expected
):
    # A generous Redis timeout: the 50 client threads share this process with the gateway,
    # and a Redis call that outlasts the default 50 ms (the gateway then serves uncached, as
    # it should) would let a late request compute again. Outages are test_redis_outage's.
    gateway = start_gateway(
        model_servers=(f"127.0.0.1:{stub_model_server.port}",), redis_timeout_ms=1000
    )
    stub_model_server.predict_delay = 0.3  # keep the first call in flight while others arrive
    with ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(pool.map(lambda _: recommend(gateway, user_id="erin", k=5), range(50)))
    metrics = requests.get(f"{gateway.url}/metrics", timeout=5).text
    errors = [m for m in metrics.splitlines() if m.startswith("aiqleads_gateway_cache_errors")]
    assert errors == []
    assert stub_model_server.predict_calls == 1
    assert all(a["items"] == expected("erin", 5, 1) for a in answers)
    assert len({a["request_id"] for a in answers}) == 50
    assert 'aiqleads_gateway_cache_misses_total{kind="recommend"} 1.0' in metrics


def test_two_replicas_share_the_cache(start_gateway, model_server, recommend, expected):
    first, second = start_gateway(), start_gateway()
    assert recommend(first, user_id="frank", k=2)["cached"] is False
    assert recommend(second, user_id="frank", k=2)["cached"] is True
    assert model_server.predict_calls == 1


def test_request_dataclass_reports_location():
    assert RecommendRequest("u", 1, 1.0, 2.0).has_location
    assert not RecommendRequest("u", 1).has_location


def test_concurrent_requests_on_two_replicas_make_one_model_call(
    start_gateway, stub_model_server, recommend, expected
):
    # Generous Redis timeout and lock lifetime: on a loaded test machine 50 ms can pass (and
    # open the circuit), and the leader's model call can outlast a 1 s lock.
    settings = {
        "redis_timeout_ms": 1000,
        "lock_ttl_ms": 10_000,
        "model_servers": (f"127.0.0.1:{stub_model_server.port}",),
    }
    first, second = start_gateway(**settings), start_gateway(**settings)
    recommend(first, user_id="warm-up", k=1)  # the model is loaded: a call takes ~0.3 s
    stub_model_server.predict_delay = 0.3  # keep the leader's call in flight meanwhile
    targets = [first, second] * 20
    with ThreadPoolExecutor(max_workers=40) as pool:
        answers = list(pool.map(lambda g: recommend(g, user_id="ursula", k=2), targets))
    errors = [
        line
        for g in (first, second)
        for line in requests.get(f"{g.url}/metrics", timeout=5).text.splitlines()
        if line.startswith("aiqleads_gateway_cache_errors_total")
    ]
    assert errors == []
    assert stub_model_server.predict_calls == 2  # warm-up + one: the other replica waited
    assert all(a["items"] == expected("ursula", 2, 1) for a in answers)


def test_several_model_servers_survive_losing_one(
    start_gateway, stub_model_server, spare_model_server, recommend, expected
):
    spare = spare_model_server
    gateway = start_gateway(
        model_servers=(f"127.0.0.1:{stub_model_server.port}", f"127.0.0.1:{spare.port}")
    )
    recommend(gateway, user_id="vera0", k=2)
    stub_model_server.stop()
    answers = [recommend(gateway, user_id=f"vera{i}", k=2) for i in range(1, 11)]
    assert [a["items"] for a in answers] == [expected(f"vera{i}", 2, 1) for i in range(1, 11)]
    assert spare.predict_calls >= 10


def _local_hits(gateway) -> float:
    text = requests.get(f"{gateway.url}/metrics", timeout=5).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("aiqleads_gateway_local_cache_hits_total")
    )


def test_the_in_process_tier_answers_repeats_without_redis_until_its_ttl(
    start_gateway, redis_server, model_server, recommend, expected
):
    gateway = start_gateway(local_cache_entries=100, local_cache_ttl_seconds=1.0)
    first = recommend(gateway, user_id="ivy", k=3)
    assert first["cached"] is False and first["items"] == expected("ivy", 3, 1)
    gateway.call(gateway.gateway.loader.drain())  # the answer's store in Redis is done
    redis_server.client().flushall()  # only this replica's memory still has the answer
    again = recommend(gateway, user_id="ivy", k=3)
    assert (again["cached"], again["items"]) == (True, first["items"])
    assert (model_server.predict_calls, _local_hits(gateway)) == (1, 1)
    time.sleep(1.2)  # past the local TTL: back to Redis (now empty), so the model again
    assert recommend(gateway, user_id="ivy", k=3)["cached"] is False
    assert model_server.predict_calls == 2
    # That answer went to Redis as well as to memory: a second replica reads it from Redis.
    other = start_gateway(local_cache_entries=100, local_cache_ttl_seconds=1.0)
    assert recommend(other, user_id="ivy", k=3)["cached"] is True
    assert (model_server.predict_calls, _local_hits(other)) == (2, 0)


def test_the_in_process_tier_keeps_known_answers_while_redis_is_down_but_adds_none(
    start_gateway, redis_server, model_server, recommend, expected
):
    gateway = start_gateway(local_cache_entries=100, local_cache_ttl_seconds=30.0)
    recommend(gateway, user_id="gina", k=3)
    redis_server.stop()
    assert recommend(gateway, user_id="gina", k=3)["cached"] is True
    assert model_server.predict_calls == 1
    # Nothing new is kept while Redis is down: a new user's repeats reach the model each time.
    fresh = [recommend(gateway, user_id="hank", k=2) for _ in range(3)]
    assert [a["cached"] for a in fresh] == [False] * 3
    assert all(a["items"] == expected("hank", 2, 1) for a in fresh)
    assert model_server.predict_calls == 4
