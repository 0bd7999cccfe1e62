"""The Redis answer cache: versioned keys, TTL, single-flight per key, and a circuit breaker.

Redis is an accelerator, never a dependency: every Redis failure degrades to "no cache"
(counted in the metrics), a short socket timeout bounds each call, and after a failure the
circuit stays open (no Redis calls at all) for a backoff that doubles up to `max_backoff`.
The first call after the backoff is a trial; its success closes the circuit again.

Cancellation (a client gone, a proxy deadline) is part of normal traffic: a cancelled call
gives its trial back to the breaker, a cancelled leader hands its load to a waiting request,
and a failed call never touches connections other requests are using - redis-py already
drops the connection of a call that failed or was cancelled, and re-checks pooled idle
connections when it hands them out. (Disconnecting the whole pool on a failure, in-use
connections included, used to pull sockets from under concurrent calls: redis-py then
raised `AttributeError: 'NoneType' object has no attribute 'writelines'` in them.)
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar, cast

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from serving.gateway.metrics import GatewayMetrics

KEY_PREFIX = "aiqleads:gw:v1"
_T = TypeVar("_T")


class Source(str, enum.Enum):
    """Where an answer came from; the value is the `cache` metric label and `X-Cache`."""

    LOCAL = "local"  # this replica's in-process tier
    HIT = "hit"  # Redis
    MISS = "miss"  # this request called the model
    COALESCED = "coalesced"  # shared another request's model call, not cached
    NONE = "none"  # not cacheable: forwarded as is

    def __str__(self) -> str:
        return self.value


# A miss's read and fill lock in one round trip: the value if stored, else SET NX PX the lock.
_GET_OR_LOCK = """
local value = redis.call('GET', KEYS[1])
if value then return {'value', value} end
if redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[1]) then return {'locked'} end
return {'busy'}
"""


class CircuitBreaker:
    """Closed while calls succeed; open for a doubling backoff after each failure."""

    def __init__(
        self,
        min_backoff: float = 0.2,
        max_backoff: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._min, self._max, self._clock = min_backoff, max_backoff, clock
        self._backoff = 0.0
        self._open_until = 0.0
        self._trial_running = False

    @property
    def is_closed(self) -> bool:
        return self._backoff == 0.0

    def allow(self) -> bool:
        """True when a call may go to Redis now (closed, or the one trial after a backoff)."""
        if self._backoff == 0.0:
            return True
        if self._trial_running or self._clock() < self._open_until:
            return False
        self._trial_running = True
        return True

    def record_success(self) -> None:
        self._backoff, self._trial_running = 0.0, False

    def record_failure(self) -> None:
        self._backoff = min(self._max, max(self._min, self._backoff * 2))
        self._open_until = self._clock() + self._backoff
        self._trial_running = False

    def record_abandoned(self) -> None:
        """A call ended without an answer (cancelled): free the trial slot, change nothing."""
        self._trial_running = False


class RedisCache:
    """Byte values in Redis with a TTL; every method returns a neutral value when Redis fails."""

    def __init__(
        self,
        url: str,
        ttl_seconds: int,
        metrics: GatewayMetrics,
        timeout_seconds: float = 0.05,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.ttl_seconds = ttl_seconds
        self._metrics = metrics
        self._breaker = breaker or CircuitBreaker()
        self._client: aioredis.Redis = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout_seconds,
            socket_connect_timeout=timeout_seconds,
            retry_on_timeout=False,
            max_connections=256,
        )
        self._get_or_lock = self._client.register_script(_GET_OR_LOCK)
        metrics.redis_up.set(0)

    @property
    def client(self) -> aioredis.Redis:
        return self._client

    @property
    def is_up(self) -> bool:
        return self._breaker.is_closed

    async def _call(self, operation: str, fn: Callable[[], Awaitable[_T]], default: _T) -> _T:
        if not self._breaker.allow():
            self._metrics.cache_errors.labels(operation).inc()
            return default
        is_trial = not self._breaker.is_closed  # allowed while open: the one trial call
        try:
            result = await fn()
        except (RedisError, OSError, asyncio.TimeoutError):
            self._breaker.record_failure()
            self._metrics.redis_up.set(0)
            self._metrics.cache_errors.labels(operation).inc()
            return default
        except BaseException:  # cancelled: no verdict on Redis, but free the trial slot
            if is_trial:
                self._breaker.record_abandoned()
            raise
        self._breaker.record_success()
        self._metrics.redis_up.set(1)
        return result

    async def ping(self) -> bool:
        return bool(await self._call("ping", self._client.ping, False))

    async def get(self, key: str) -> bytes | None:
        async def run() -> bytes | None:
            value: bytes | None = await self._client.get(key)  # redis-py's reply: Any
            return value

        return await self._call("get", run, None)

    async def set(self, key: str, value: bytes) -> None:
        await self._call("set", lambda: self._client.set(key, value, ex=self.ttl_seconds), None)

    async def hmget(self, key: str, fields: tuple[str, ...]) -> list[bytes | None] | None:
        async def run() -> list[bytes | None]:
            # The asyncio client's reply (redis-py annotates both clients' as `Awaitable | list`).
            reply = self._client.hmget(key, list(fields))
            return await cast("Awaitable[list[bytes | None]]", reply)

        return await self._call("hmget", run, None)

    async def get_or_lock(self, key: str, ttl_ms: int) -> tuple[bytes | None, bool | None]:
        """(value, lock) in one round trip: the stored value, or else the fill lock (True:
        this replica took it, False: another replica holds it, None: Redis unreachable)."""

        async def run() -> tuple[bytes | None, bool | None]:
            answer = await self._get_or_lock(keys=[key, f"{key}:lock"], args=[ttl_ms])
            if answer[0] == b"value":
                return answer[1], None
            return None, answer[0] == b"locked"

        return await self._call("get_or_lock", run, (None, None))

    async def store_and_unlock(self, key: str, value: bytes, unlock: bool) -> bool:
        """Store ``value`` and, when ``unlock``, release the fill lock: one round trip, the
        value first, so a replica that sees the lock gone finds the value. True if stored."""

        async def store() -> bool:
            pipe = self._client.pipeline(transaction=False)
            pipe.set(key, value, ex=self.ttl_seconds)
            if unlock:
                pipe.delete(f"{key}:lock")
            await pipe.execute()
            return True

        return await self._call("store_and_unlock", store, False)

    async def unlock(self, key: str) -> None:
        await self._call("unlock", lambda: self._client.delete(f"{key}:lock"), None)

    async def close(self) -> None:
        await self._client.aclose()


@dataclass(frozen=True)
class Loaded:
    value: bytes
    source: Source


class _LeaderCancelled(Exception):
    """The request computing a key was cancelled; a waiting request takes the load over."""


class LocalCache:
    """A bounded in-process LRU with a TTL, in front of Redis in each replica.

    Keys carry the model version, so an entry can only be as stale as its TTL; the TTL is
    short (seconds) so a replica never serves an answer much older than Redis would. A hit
    here costs no Redis round trip, which is most of what a cache hit costs the gateway.
    """

    def __init__(
        self, max_entries: int, ttl_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_entries < 1 or ttl_seconds <= 0:
            raise ValueError("LocalCache needs max_entries >= 1 and ttl_seconds > 0")
        self._max, self._ttl, self._clock = max_entries, ttl_seconds, clock
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, key: str, value: bytes) -> None:
        self._entries[key] = (self._clock() + self._ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)


class CachingLoader:
    """Cache-aside loading with one model call per key in flight.

    In this process, concurrent loads of one key share a single future. Across replicas, a
    short Redis lock (`SET NX PX`, taken in the same round trip as the read) lets one replica
    compute while the others poll the cache for at most the lock's lifetime, then compute
    themselves. When the computing request is cancelled, the requests waiting on it start
    over (one of them becomes the leader).

    A computed answer goes back to its caller at once; storing it in Redis (and releasing
    the lock) finishes in the background. Until then the key stays in flight here: a request
    for it in this process waits for that store and is a hit (or shares the answer if the
    store failed), and other replicas wait on the lock and then read it.

    With a `LocalCache`, answers read from or stored in Redis are also kept in process and
    served from there (`Source.LOCAL`) until its TTL; while Redis is down nothing new is kept, so
    the gateway serves uncached as before.
    """

    def __init__(
        self,
        cache: RedisCache,
        metrics: GatewayMetrics,
        lock_ttl_ms: int = 1000,
        poll_seconds: float = 0.005,
        local: LocalCache | None = None,
    ) -> None:
        self._cache, self._metrics = cache, metrics
        self._lock_ttl_ms, self._poll = lock_ttl_ms, poll_seconds
        self._inflight: dict[str, asyncio.Future[bytes]] = {}
        # key -> its answer's store (True: stored)
        self._storing: dict[str, asyncio.Task[bool]] = {}
        self._local = local

    async def load(self, kind: str, key: str, compute: Callable[[], Awaitable[bytes]]) -> Loaded:
        """The value of `key`: from this process, from Redis, from a load in flight, or
        computed and stored."""
        if self._local is not None and (value := self._local.get(key)) is not None:
            self._metrics.cache_hits.labels(kind).inc()
            self._metrics.local_cache_hits.labels(kind).inc()
            return Loaded(value, Source.LOCAL)
        while True:
            loaded = await self._load_once(kind, key, compute)
            if loaded is not None:
                if self._local is not None and self._cache.is_up:
                    self._local.put(key, loaded.value)
                return loaded

    async def drain(self) -> None:
        """Wait for the Redis stores still running in the background (at shutdown)."""
        while self._storing:
            await asyncio.gather(*self._storing.values(), return_exceptions=True)

    async def _follow(self, kind: str, key: str, pending: asyncio.Future[bytes]) -> Loaded | None:
        """The leader's answer; None when the leader was cancelled (the caller starts over).
        An answer already computed and on its way to Redis is a cache hit once stored (a
        round trip away); if the store fails it was shared, as with a load in flight."""
        if pending.done() and not pending.cancelled() and pending.exception() is None:
            if await asyncio.shield(self._storing[key]):
                self._metrics.cache_hits.labels(kind).inc()
                return Loaded(pending.result(), Source.HIT)
            self._metrics.cache_coalesced.labels(kind).inc()
            return Loaded(pending.result(), Source.COALESCED)
        self._metrics.cache_coalesced.labels(kind).inc()
        try:
            return Loaded(await asyncio.shield(pending), Source.COALESCED)
        except _LeaderCancelled:
            return None

    async def _load_once(
        self, kind: str, key: str, compute: Callable[[], Awaitable[bytes]]
    ) -> Loaded | None:
        pending = self._inflight.get(key)
        if pending is not None:
            return await self._follow(kind, key, pending)
        cached, locked = await self._cache.get_or_lock(key, self._lock_ttl_ms)
        if cached is not None:
            self._metrics.cache_hits.labels(kind).inc()
            return Loaded(cached, Source.HIT)
        pending = self._inflight.get(key)  # another task may have started while we read
        if pending is not None:
            if locked:
                await self._cache.unlock(key)
            return await self._follow(kind, key, pending)
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            loaded = await self._fill(kind, key, compute, locked)
        except asyncio.CancelledError:
            # Only this request was cancelled: the ones waiting on it must not be.
            del self._inflight[key]
            future.set_exception(_LeaderCancelled())
            future.exception()  # mark it retrieved, in case nobody was waiting
            raise
        except BaseException as e:
            del self._inflight[key]
            future.set_exception(e)
            future.exception()  # followers re-raise it; mark it retrieved for the leader
            raise
        future.set_result(loaded.value)
        if loaded.source is Source.MISS:
            store = self._store(key, future, loaded.value, bool(locked))
            self._storing[key] = asyncio.create_task(store)
        else:
            del self._inflight[key]
        return loaded

    async def _store(
        self, key: str, future: asyncio.Future[bytes], value: bytes, unlock: bool
    ) -> bool:
        try:
            return await self._cache.store_and_unlock(key, value, unlock)
        finally:
            if self._inflight.get(key) is future:
                del self._inflight[key]
                del self._storing[key]

    async def _fill(
        self, kind: str, key: str, compute: Callable[[], Awaitable[bytes]], locked: bool | None
    ) -> Loaded:
        if locked is False:  # another replica is computing this key: wait for its answer
            deadline = time.monotonic() + self._lock_ttl_ms / 1000
            while time.monotonic() < deadline:
                await asyncio.sleep(self._poll)
                cached = await self._cache.get(key)
                if cached is not None:
                    self._metrics.cache_hits.labels(kind).inc()
                    return Loaded(cached, Source.HIT)
                if not self._cache.is_up:
                    break
        self._metrics.cache_misses.labels(kind).inc()
        try:
            value = await compute()
        except BaseException:
            if locked:
                await self._cache.unlock(key)
            raise
        return Loaded(value, Source.MISS)
