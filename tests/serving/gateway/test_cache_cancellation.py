"""Cancelled cache calls (a client gone, a proxy timeout) against a real Redis under stress.

Requests that are cancelled mid-call, or that time out while others use the same pool, must
not break the calls of other requests, must not leave the circuit breaker stuck open, and
a cancelled leader must not fail the requests waiting on its answer.
"""

from __future__ import annotations

import asyncio
import collections

from serving.gateway.cache import CachingLoader, CircuitBreaker, RedisCache
from serving.gateway.metrics import GatewayMetrics

PAUSE_MS = 400  # long enough for the 50 ms Redis timeout to fire


def _cache(redis_server, timeout: float = 0.05, breaker: CircuitBreaker | None = None):
    return RedisCache(
        redis_server.url, ttl_seconds=60, metrics=GatewayMetrics(), timeout_seconds=timeout,
        breaker=breaker,
    )  # fmt: skip


async def _until(predicate, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


def test_cancelled_and_timed_out_calls_leave_the_other_calls_and_the_pool_sound(redis_server):
    async def scenario():
        cache = _cache(redis_server, breaker=CircuitBreaker(min_backoff=0.01, max_backoff=0.02))
        await cache.set("k", b"v")
        pauser = redis_server.client()
        outcomes: collections.Counter = collections.Counter()
        for round_ in range(40):  # cancellations land at different points of a call
            if round_ % 2:  # Redis stops answering: calls in flight time out (50 ms)
                pauser.execute_command("CLIENT", "PAUSE", 100, "ALL")
            tasks = [asyncio.create_task(cache.get("k")) for _ in range(80)]
            await asyncio.sleep(0.001 * (round_ % 7))
            for task in tasks[::3]:  # a third of the requests go away mid-call
                task.cancel()
            for result in await asyncio.gather(*tasks, return_exceptions=True):
                outcomes[result if result in (b"v", None) else type(result).__name__] += 1
            await asyncio.sleep(0.12)
        # Every call answered the value or "no cache", or was cancelled: nothing else.
        assert set(outcomes) <= {b"v", None, "CancelledError"}, outcomes
        await _until(lambda: _get_is(cache, b"v"))  # and the cache works again
        assert cache.is_up
        await cache.close()

    asyncio.run(scenario())


async def _get_is(cache: RedisCache, value: bytes) -> bool:
    return await cache.get("k") == value


def test_a_cancelled_trial_call_does_not_keep_the_circuit_open(redis_server):
    async def scenario():
        cache = _cache(redis_server, breaker=CircuitBreaker(min_backoff=0.05, max_backoff=0.05))
        await cache.set("k", b"v")
        redis_server.client().execute_command("CLIENT", "PAUSE", PAUSE_MS, "ALL")
        assert await cache.get("k") is None  # times out: the circuit opens for 50 ms
        assert not cache.is_up
        await asyncio.sleep(0.06)
        trial = asyncio.create_task(cache.get("k"))  # the one trial call after the backoff
        await asyncio.sleep(0.01)
        trial.cancel()
        await asyncio.gather(trial, return_exceptions=True)
        await asyncio.sleep(PAUSE_MS / 1000)
        await _until(lambda: _get_is(cache, b"v"))
        assert cache.is_up
        await cache.close()

    asyncio.run(scenario())


def test_a_cancelled_leader_hands_the_load_to_a_waiting_request(redis_server):
    async def scenario():
        cache = _cache(redis_server, timeout=1.0)
        loader = CachingLoader(cache, GatewayMetrics())
        started, calls = asyncio.Event(), []

        async def slow_compute() -> bytes:
            calls.append("leader")
            started.set()
            await asyncio.sleep(30)
            return b"never"

        async def compute() -> bytes:
            calls.append("follower")
            return b"fresh"

        leader = asyncio.create_task(loader.load("recommend", "key-1", slow_compute))
        await started.wait()
        follower = asyncio.create_task(loader.load("recommend", "key-1", compute))
        await asyncio.sleep(0.05)  # the follower waits on the leader's load
        leader.cancel()
        loaded = await asyncio.wait_for(follower, 10)
        assert leader.cancelled()
        assert (loaded.value, loaded.source, calls) == (b"fresh", "miss", ["leader", "follower"])
        await loader.drain()  # the answer reaches Redis in the background
        assert await cache.get("key-1") == b"fresh"
        assert await cache.client.exists("key-1:lock") == 0  # the cancelled leader's lock is gone
        await cache.close()

    asyncio.run(scenario())
