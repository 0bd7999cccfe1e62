"""The gateway's side of the event log: durable feedback appends and batched impressions.

- **Feedback** is written before the API answers: `append_feedback` returns only once the
  event store has the entry (or knew the feedback id already), and raises `ServingError`
  UNAVAILABLE, a retryable 503, when it cannot. Nothing is acknowledged that is not stored.
- **Impressions** never slow an answer: they go to a bounded queue that a background task
  writes in batches (one pipelined round trip each). When the store is slow or down the
  queue fills and further impressions are dropped and counted (`impressions{outcome=
  "dropped"}`); feedback for those answers is still attributed by its signed request id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from aiqleads.events.log import FEEDBACK_APPEND, feedback_append_call, impression_fields
from aiqleads.events.records import IMPRESSIONS_STREAM, Feedback, Impression
from serving.errors import unavailable
from serving.gateway.metrics import GatewayMetrics

log = logging.getLogger(__name__)
RETRY_SECONDS = (0.05, 2.0)  # backoff of the impression writer after a failed batch


class EventLogWriter:
    """Writes one gateway's feedback and impressions to the event store."""

    def __init__(
        self,
        url: str,
        metrics: GatewayMetrics,
        queue_size: int,
        batch: int,
        dedup_seconds: int,
        timeout_seconds: float,
    ) -> None:
        self._redis = aioredis.Redis.from_url(
            url, socket_timeout=timeout_seconds, socket_connect_timeout=timeout_seconds
        )
        self._append = self._redis.register_script(FEEDBACK_APPEND)
        self._metrics = metrics
        self._queue: asyncio.Queue[Impression] = asyncio.Queue(maxsize=queue_size)
        self._batch = batch
        self._dedup_seconds = dedup_seconds
        self._task: asyncio.Task[None] | None = None

    async def append_feedback(self, feedback: Feedback) -> bool:
        """Store one feedback; False when its id was stored before (a retry)."""
        start = time.perf_counter()
        try:
            keys, args = feedback_append_call(feedback, self._dedup_seconds)
            entry = await self._append(keys=keys, args=args)
        except RedisError as e:
            self._metrics.feedback_appends.labels("refused").inc()
            raise unavailable(
                f"the event store cannot take feedback now ({type(e).__name__}); retry: "
                "nothing was recorded"
            ) from e
        finally:
            self._metrics.event_log_latency.labels("feedback").observe(time.perf_counter() - start)
        stored = entry is not None
        self._metrics.feedback_appends.labels("stored" if stored else "duplicate").inc()
        return stored

    def log_impression(self, impression: Impression) -> None:
        """Queue an impression; drop (and count) it when the queue is full."""
        try:
            self._queue.put_nowait(impression)
        except asyncio.QueueFull:
            self._metrics.impressions.labels("dropped").inc()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._write_forever())

    async def _write_batch(self, batch: list[Impression]) -> None:
        start = time.perf_counter()
        pipe = self._redis.pipeline(transaction=False)
        for imp in batch:
            pipe.xadd(IMPRESSIONS_STREAM, impression_fields(imp))
        await pipe.execute()
        self._metrics.event_log_latency.labels("impressions").observe(time.perf_counter() - start)
        self._metrics.impressions.labels("logged").inc(len(batch))

    async def _write_forever(self) -> None:
        backoff = 0.0
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                while True:
                    try:
                        await self._write_batch(batch)
                        backoff = 0.0
                        break
                    except RedisError as e:
                        backoff = min(max(backoff * 2, RETRY_SECONDS[0]), RETRY_SECONDS[1])
                        log.warning("event store refused %d impressions (%s)", len(batch), e)
                        if self._queue.full():  # the oldest wait longest: give them up first
                            self._metrics.impressions.labels("dropped").inc(len(batch))
                            break
                        await asyncio.sleep(backoff)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def close(self, grace_seconds: float) -> None:
        """Write what is queued (for at most ``grace_seconds``), then close the connections."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._drain(), timeout=grace_seconds)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        left = self._queue.qsize()
        if left:
            self._metrics.impressions.labels("dropped").inc(left)
        await self._redis.aclose()

    async def _drain(self) -> None:
        if self._task is not None:
            await self._queue.join()  # every queued impression written or given up
