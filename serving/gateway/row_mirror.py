"""The gateway's in-process copy of the online rows it has read, kept until Redis says they
changed (server-assisted client tracking, broadcast mode).

A recommendation needs the user's rows and the unavailable leads. Reading them costs a round
trip to the online store on every request, cache hits included, since the answer's cache key
holds the rows' event times. The mirror takes that round trip off every request but a user's
first one after a change:

- One connection subscribes to ``__redis__:invalidate``; a second turns on
  ``CLIENT TRACKING ... REDIRECT <the first> BCAST PREFIX ...`` for the user views' rows and
  the availability counter. Redis then publishes the name of every key under those prefixes
  that any client writes (the streaming updater, a materialization, an expiry), whether or not
  this gateway has read it.
- A row read from the store is kept (absent rows too: an unknown user costs no round trip
  either) until its key is published. A read that an invalidation overtakes is not kept.
- While the tracking connections are down, the mirror is off: every read goes to the store,
  as without a mirror, and nothing read before the outage is kept. Both are pinged every
  second, so a connection that dies silently (the tracking one alone would simply stop the
  invalidations) turns the mirror off within about two seconds.

Bounded: at most ``capacity`` rows (least recently used go first).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Iterable

import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection as Connection
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

CHANNEL = "__redis__:invalidate"
PING_SECONDS = 1.0  # both connections are pinged this often
RETRY_SECONDS = (0.1, 5.0)  # reconnect backoff: first, longest

Raw = dict[bytes, bytes]  # one HGETALL reply: field -> value, empty when the key is absent


class RowMirror:
    """Rows by key, valid while ``live``; filled by `begin`/`keep`, emptied by `invalidate`."""

    def __init__(self, capacity: int, watched: tuple[str, ...] = ()) -> None:
        self.capacity = capacity
        self.live = False
        self._rows: OrderedDict[str, Raw] = OrderedDict()
        self._generation = 0  # +1 whenever the mirror goes on or off
        self._reading: dict[str, list[int]] = {}  # key -> [reads in flight, invalidations]
        # Keys whose value the caller keeps itself: their invalidations are counted here.
        self._epochs = dict.fromkeys(watched, 0)

    def __len__(self) -> int:
        return len(self._rows)

    def epoch(self, key: str) -> int:
        """Moves whenever watched ``key`` may have changed (and when the mirror switches):
        a value read while it stays the same is still current."""
        return self._epochs[key]

    def _bump(self, keys: Iterable[str]) -> None:
        for key in keys:
            if key in self._epochs:
                self._epochs[key] += 1

    def get(self, key: str) -> Raw | None:
        if not self.live:
            return None
        raw = self._rows.get(key)
        if raw is not None:
            self._rows.move_to_end(key)
        return raw

    def begin(self, key: str) -> tuple[int, int]:
        """Marks a read of ``key`` from the store; pass the ticket to `keep`."""
        reading = self._reading.setdefault(key, [0, 0])
        reading[0] += 1
        return self._generation, reading[1]

    def keep(self, key: str, ticket: tuple[int, int], raw: Raw | None) -> None:
        """Ends a read begun by `begin`; keeps ``raw`` unless the key changed since (or the
        mirror went off and on) or the read failed (``raw`` None)."""
        reading = self._reading[key]
        generation, invalidations = ticket
        if (
            raw is not None
            and self.live
            and generation == self._generation
            and invalidations == reading[1]
        ):
            self._rows[key] = raw
            self._rows.move_to_end(key)
            while len(self._rows) > self.capacity:
                self._rows.popitem(last=False)
        reading[0] -= 1
        if not reading[0]:
            del self._reading[key]

    def invalidate(self, keys: Iterable[str] | None) -> None:
        """Drops ``keys`` (None: everything, as after a FLUSHDB)."""
        if keys is None:
            self._rows.clear()
            self._bump(list(self._epochs))
            for reading in self._reading.values():
                reading[1] += 1
            return
        self._bump(keys)
        for key in keys:
            self._rows.pop(key, None)
            in_flight = self._reading.get(key)
            if in_flight is not None:
                in_flight[1] += 1

    def switch(self, live: bool) -> None:
        """On: an empty mirror that keeps what is read from now on; off: cleared, unused."""
        self._rows.clear()
        self._generation += 1
        self._bump(list(self._epochs))
        self.live = live


class Tracking:
    """Keeps a `RowMirror` live: subscribes to the invalidations of ``prefixes`` on the
    store behind ``client``'s pool, and switches the mirror off while it cannot."""

    def __init__(self, client: aioredis.Redis, mirror: RowMirror, prefixes: tuple[str, ...]):
        self._pool = client.connection_pool
        self._mirror = mirror
        self._prefixes = prefixes
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None and self._mirror.capacity > 0:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._mirror.switch(False)

    async def _run(self) -> None:
        delay = RETRY_SECONDS[0]
        while True:
            subscriber: Connection = self._pool.make_connection()  # type: ignore[no-untyped-call]
            tracker: Connection = self._pool.make_connection()  # type: ignore[no-untyped-call]
            try:
                await self._subscribe(subscriber, tracker)
                log.info("online rows mirrored in process (Redis client tracking)")
                delay = RETRY_SECONDS[0]
                await self._listen(subscriber, tracker)
            except (RedisError, OSError, ValueError, TypeError) as e:
                if self._mirror.live:
                    log.warning("online row mirror off until tracking is back: %s", e)
                else:
                    log.debug("online row tracking not available: %s", e)
            finally:
                self._mirror.switch(False)
                for connection in (subscriber, tracker):
                    await connection.disconnect(nowait=True)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_SECONDS[1])

    async def _subscribe(self, subscriber: Connection, tracker: Connection) -> None:
        await subscriber.connect()  # type: ignore[no-untyped-call]
        await subscriber.send_command("CLIENT", "ID")
        client_id = int(await subscriber.read_response())
        await subscriber.send_command("SUBSCRIBE", CHANNEL)
        await subscriber.read_response()
        await tracker.connect()  # type: ignore[no-untyped-call]
        prefixes = [word for prefix in self._prefixes for word in ("PREFIX", prefix)]
        await tracker.send_command(
            "CLIENT", "TRACKING", "ON", "REDIRECT", client_id, "BCAST", *prefixes
        )
        reply = await tracker.read_response()
        if reply not in (b"OK", "OK"):
            raise ValueError(f"CLIENT TRACKING answered {reply!r}")
        self._mirror.switch(True)  # only reads from now on are kept

    async def _listen(self, subscriber: Connection, tracker: Connection) -> None:
        """Applies invalidations until either connection fails. Every ``PING_SECONDS`` both
        are pinged: a tracker connection that died alone would stop the invalidations
        silently, so its death must surface within a ping, as an unanswered one does."""
        loop = asyncio.get_running_loop()
        pinged_at, pong_due = loop.time(), False
        while True:
            message = await subscriber.read_response(timeout=PING_SECONDS)
            if message is not None:
                kind = message[0]
                if kind in (b"pong", "pong"):
                    pong_due = False
                elif kind in (b"message", "message") and len(message) == 3:
                    keys = message[2]
                    self._mirror.invalidate(
                        None
                        if keys is None
                        else [k.decode() if isinstance(k, bytes) else str(k) for k in keys]
                    )
            if loop.time() - pinged_at >= PING_SECONDS:
                if pong_due:
                    raise ConnectionError("the invalidation subscription stopped answering")
                await tracker.send_command("PING")
                await tracker.read_response()
                await subscriber.send_command("PING")
                pinged_at, pong_due = loop.time(), True
