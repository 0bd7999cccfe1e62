"""The benchmarks' open-loop load generator and latency helpers.

`run_load` replays a user trace (`zipf_users`) at a fixed offered rate over keep-alive
HTTP/1.1 connections; latency is measured from each request's *scheduled* send time, so a
generator or stack that falls behind shows up in the figures (no coordinated omission).
`run_step` runs one such step on uvloop.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")
RECOMMEND = "/v1/recommendations"
REQUEST_TIMEOUT_S = 5.0
CONNECTIONS = 64  # keep-alive connections of `run_load`


def run_step(coro: Coroutine[Any, Any, T]) -> T:
    """Run one load step on uvloop: the generator's own CPU per request is part of every
    figure on these shared cores, and libuv's loop costs less of it than asyncio's."""
    import uvloop

    return uvloop.run(coro)


def zipf_users(n_users: int, exponent: float, size: int, seed: int) -> list[str]:
    """A frequent-user trace: user ranks drawn with P(rank r) proportional to r^-exponent."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, n_users + 1) ** exponent
    ranks = rng.choice(n_users, size=size, p=weights / weights.sum())
    return [f"user-{r:05d}" for r in ranks]


class Result:
    """Per-request outcomes of one load step."""

    def __init__(self) -> None:
        self.latency_ms: list[float] = []
        self.cached: list[bool] = []
        self.errors: dict[str, int] = {}
        self.send_lag_ms: list[float] = []
        self.service_ms: list[float] = []  # from the request's actual send, answered ones
        self.elapsed = 0.0

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1

    @property
    def n_errors(self) -> int:
        return sum(self.errors.values())

    def hits_and_misses(self) -> tuple[list[float], list[float]]:
        """The answered requests' latencies (ms): cache hits, cache misses."""
        pairs = list(zip(self.latency_ms, self.cached, strict=True))
        return [ms for ms, c in pairs if c], [ms for ms, c in pairs if not c]


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """(status, body, keep-alive) of one HTTP/1.1 response with a Content-Length."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length, keep = None, True
    for line in head.lower().split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name == b"content-length":
            length = int(value)
        elif name == b"connection" and value.strip() == b"close":
            keep = False
    if length is None:
        raise ValueError("response without content-length")
    return status, await reader.readexactly(length), keep


async def run_load(
    url: str,
    users: list[str],
    rate: float,
    duration: float,
    path: str,
    k: int = 10,
    headers: dict[str, str] | None = None,
) -> Result:
    """Open loop: request i is due at start + i/rate whatever happened to earlier ones.

    ``users[i]`` is the user of request i. A pool of keep-alive HTTP/1.1 connections
    (raw asyncio streams: a fraction of a general client's CPU per request) takes due
    requests in order; a request waiting for a free connection keeps its clock running.
    """
    host, _, port = url.removeprefix("http://").partition(":")
    # Extra header lines, e.g. the stack's bearer token (`ServingStack.auth_headers()`).
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    result = Result()
    queue: asyncio.Queue = asyncio.Queue()
    n = int(rate * duration)

    async def worker() -> None:
        reader = writer = None
        while (item := await queue.get()) is not None:
            i, due = item
            body = json.dumps({"user_id": users[i % len(users)], "k": k}).encode()
            request = (
                f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                f"{extra}Content-Length: {len(body)}\r\n\r\n"
            ).encode() + body
            try:
                left = due + REQUEST_TIMEOUT_S - time.perf_counter()
                if left <= 0:
                    raise asyncio.TimeoutError
                if writer is None:
                    reader, writer = await asyncio.wait_for(
                        asyncio.open_connection(host, int(port)), left
                    )
                sent = time.perf_counter()
                result.send_lag_ms.append((sent - due) * 1000)
                writer.write(request)
                left = due + REQUEST_TIMEOUT_S - time.perf_counter()
                status, payload, keep = await asyncio.wait_for(_read_response(reader), left)
            except (OSError, ValueError, asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
                result.error(type(e).__name__)
                if writer is not None:
                    writer.close()
                reader = writer = None
                continue
            if not keep:
                writer.close()
                reader = writer = None
            if status != 200:
                result.error(f"http {status}")
                continue
            done = time.perf_counter()
            result.latency_ms.append((done - due) * 1000)
            result.service_ms.append((done - sent) * 1000)
            result.cached.append(b'"cached": true' in payload or b'"cached":true' in payload)
        if writer is not None:
            writer.close()

    workers = [asyncio.create_task(worker()) for _ in range(CONNECTIONS)]
    start = time.perf_counter() + 0.05
    for i in range(n):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait((i, due))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    result.elapsed = time.perf_counter() - start
    return result


def pct(values: list[float] | np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


def timed_calls(call: Callable[[], object], warmup: int, calls: int) -> list[float]:
    """Seconds each of ``calls`` calls of ``call`` took, after ``warmup`` untimed ones."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return times
