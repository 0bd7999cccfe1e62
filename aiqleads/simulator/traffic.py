"""The traffic simulator: simulated users ask the API for leads and report what they do.

`run()` sends recommendation requests at a fixed rate (open loop: a slow answer does not
slow the arrivals), each from a user drawn by activity. The user reacts to the answer
through the behaviour model (`world.World.react`) and posts one feedback per funnel step,
in order, through ``/v1/feedback``. The funnel's delays (minutes to days in the generator)
are compressed to nothing: the steps are posted at once, one after the other.

Bounded everywhere: requests in flight (``max_in_flight``; arrivals beyond it are counted as
shed, not queued), retries of a feedback (on 503 or a dropped connection, with backoff),
and the run's length. It talks to loopback addresses only.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import socket
import time
import urllib.parse
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
import numpy as np

from aiqleads.errors import ConfigError
from aiqleads.simulator.scenarios import Scenario
from aiqleads.simulator.world import World

FEEDBACK_RETRIES = 5
RETRY_BACKOFF_SECONDS = 0.05
REQUEST_TIMEOUT_SECONDS = 5.0
MAX_DURATION_SECONDS = 86_400.0
MAX_RATE = 5_000.0


@dataclasses.dataclass
class TrafficStats:
    """What the simulator did and saw; the acknowledged feedback ids among it."""

    requests: int = 0
    answers: int = 0
    errors: int = 0
    shed: int = 0
    empty: int = 0
    feedback_sent: int = 0
    feedback_accepted: int = 0
    feedback_duplicate: int = 0
    feedback_failed: int = 0
    feedback_retries: int = 0
    events: dict[str, int] = dataclasses.field(default_factory=dict)
    by_variant: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)
    error_statuses: dict[str, int] = dataclasses.field(default_factory=dict)
    acknowledged: list[str] = dataclasses.field(default_factory=list)
    seconds: float = 0.0

    @property
    def ctr(self) -> float:
        return self.events.get("click", 0) / self.answers if self.answers else 0.0

    def count_event(self, variant: str, event: str) -> None:
        self.events[event] = self.events.get(event, 0) + 1
        arm = self.by_variant.setdefault(variant, {"answers": 0})
        arm[event] = arm.get(event, 0) + 1

    def summary(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out.pop("acknowledged")
        out["ctr"] = round(self.ctr, 6)
        for arm in out["by_variant"].values():
            arm["ctr"] = round(arm.get("click", 0) / arm["answers"], 6) if arm["answers"] else 0.0
        return out

    def progress_line(self, elapsed: float) -> str:
        return (
            f"t={elapsed:5.1f}s requests {self.requests:,} answers {self.answers:,} "
            f"errors {self.errors:,} shed {self.shed:,} feedback accepted "
            f"{self.feedback_accepted:,} (failed {self.feedback_failed:,}) CTR {self.ctr:.3f}"
        )


def check_loopback(url: str) -> str:
    """``url`` without a trailing slash, if it is http(s) on a loopback address."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ConfigError(f"--url {url!r} must be an http(s) URL such as http://127.0.0.1:8080")
    try:
        infos = socket.getaddrinfo(parsed.hostname, parsed.port or 80, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise ConfigError(f"--url host {parsed.hostname!r} does not resolve: {e}") from e
    for info in infos:
        if not ipaddress.ip_address(info[4][0]).is_loopback:
            raise ConfigError(
                f"--url host {parsed.hostname!r} is not a loopback address: the simulator only "
                "sends traffic to this machine"
            )
    return url.rstrip("/")


class _Traffic:
    def __init__(
        self,
        world: World,
        url: str,
        rate: float,
        duration: float,
        seed: int,
        k: int,
        scenario: Scenario | None,
        max_in_flight: int,
        token: str | None = None,
    ) -> None:
        self.world, self.url, self.rate, self.duration = world, url, rate, duration
        # The front door's bearer token (a stack with auth on answers 401 without one).
        self.headers = {"authorization": f"Bearer {token}"} if token else {}
        self.k, self.scenario, self.max_in_flight = k, scenario, max_in_flight
        self.rng = np.random.default_rng(seed)
        self.stats = TrafficStats()
        self.in_flight = 0
        self.started = 0.0
        self._weights = world.population.activity / world.population.activity.sum()
        self._cold = np.flatnonzero(world.cold)

    def _active_scenario(self, elapsed: float) -> Scenario | None:
        s = self.scenario
        return s if s is not None and elapsed >= s.start else None

    def _pick(self, elapsed: float) -> tuple[World, int, tuple[float, float]]:
        """The world now, a user drawn by activity, and the location the client sends."""
        scenario = self._active_scenario(elapsed)
        world = scenario.world if scenario else self.world
        if scenario and scenario.new_user_share and self.rng.random() < scenario.new_user_share:
            user = int(self.rng.choice(self._cold))
        else:
            user = int(self.rng.choice(len(self._weights), p=self._weights))
        pop = world.population
        location = (float(pop.home_latitude[user]), float(pop.home_longitude[user]))
        if scenario and scenario.fixed_location is not None:
            location = scenario.fixed_location
        return world, user, location

    async def _post(
        self, session: aiohttp.ClientSession, path: str, body: Mapping[str, object]
    ) -> tuple[int, object]:
        async with session.post(self.url + path, json=body) as response:
            payload = await response.json(content_type=None)
            return response.status, payload

    async def _feedback(
        self, session: aiohttp.ClientSession, body: dict[str, str], variant: str
    ) -> None:
        self.stats.feedback_sent += 1
        for attempt in range(FEEDBACK_RETRIES + 1):
            try:
                status, payload = await self._post(session, "/v1/feedback", body)
            except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
                status, payload = 0, None
            if status == 200 and isinstance(payload, dict) and payload.get("accepted"):
                self.stats.feedback_accepted += 1
                self.stats.feedback_duplicate += bool(payload.get("duplicate"))
                self.stats.acknowledged.append(body["feedback_id"])
                self.stats.count_event(variant, body["event_type"])
                return
            if status not in (0, 429, 502, 503, 504) or attempt == FEEDBACK_RETRIES:
                break
            self.stats.feedback_retries += 1
            await asyncio.sleep(RETRY_BACKOFF_SECONDS * 2**attempt)
        self.stats.feedback_failed += 1
        key = f"feedback {status}"
        self.stats.error_statuses[key] = self.stats.error_statuses.get(key, 0) + 1

    async def _one(self, session: aiohttp.ClientSession, elapsed: float) -> None:
        world, user, (lat, lon) = self._pick(elapsed)
        user_id = str(world.user_ids[user])
        body = {
            "user_id": user_id,
            "k": self.k,
            "latitude": round(lat, 6),
            "longitude": round(lon, 6),
        }
        self.stats.requests += 1
        try:
            status, payload = await self._post(session, "/v1/recommendations", body)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
            status, payload = 0, None
        if status != 200 or not isinstance(payload, dict):
            self.stats.errors += 1
            key = f"recommend {status}"
            self.stats.error_statuses[key] = self.stats.error_statuses.get(key, 0) + 1
            return
        self.stats.answers += 1
        variant = str(payload.get("variant", "?"))
        arm = self.stats.by_variant.setdefault(variant, {"answers": 0})
        arm["answers"] += 1
        found = [world.lead_index.get(item["lead_id"]) for item in payload.get("items", [])]
        shown = np.array([i for i in found if i is not None], dtype=np.int64)
        if not len(shown):
            self.stats.empty += 1
            return
        lead, steps = world.react(user, shown, self.rng)
        for event in steps:
            await self._feedback(
                session,
                {
                    "request_id": payload["request_id"],
                    "user_id": user_id,
                    "lead_id": str(world.lead_ids[lead]),
                    "event_type": event,
                    "feedback_id": f"sim-{uuid.uuid4().hex[:24]}",
                },
                variant,
            )

    async def _guarded(self, session: aiohttp.ClientSession, elapsed: float) -> None:
        self.in_flight += 1
        try:
            await self._one(session, elapsed)
        finally:
            self.in_flight -= 1

    async def run(self, progress: Callable[[TrafficStats, float], None] | None) -> TrafficStats:
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)
        connector = aiohttp.TCPConnector(limit=self.max_in_flight)
        tasks: set[asyncio.Task[None]] = set()
        async with aiohttp.ClientSession(
            timeout=timeout, connector=connector, headers=self.headers
        ) as session:
            self.started = time.monotonic()
            interval = 1.0 / self.rate
            sent = 0
            next_report = 5.0
            while True:
                elapsed = time.monotonic() - self.started
                if elapsed >= self.duration:
                    break
                due = int(elapsed / interval) + 1 - sent
                for _ in range(max(due, 0)):
                    sent += 1
                    if self.in_flight >= self.max_in_flight:
                        self.stats.shed += 1
                        continue
                    task = asyncio.create_task(self._guarded(session, elapsed))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                if progress and elapsed >= next_report:
                    progress(self.stats, elapsed)
                    next_report += 5.0
                await asyncio.sleep(min(interval, 0.01))
            if tasks:
                await asyncio.wait(tasks, timeout=REQUEST_TIMEOUT_SECONDS * (FEEDBACK_RETRIES + 4))
            for task in tasks:
                task.cancel()
        self.stats.seconds = time.monotonic() - self.started
        return self.stats


def run(
    world: World,
    url: str,
    duration: float,
    rate: float,
    seed: int = 0,
    k: int = 10,
    scenario: Scenario | None = None,
    max_in_flight: int = 256,
    progress: Callable[[TrafficStats, float], None] | None = None,
    token: str | None = None,
) -> TrafficStats:
    """Simulate ``duration`` seconds of traffic at ``rate`` requests/s against ``url``,
    authenticated with ``token`` (a bearer JWT) when given."""
    url = check_loopback(url)
    if not 0 < duration <= MAX_DURATION_SECONDS:
        raise ConfigError(f"--duration {duration:g} is out of range: use 0 < s <= 86400")
    if not 0 < rate <= MAX_RATE:
        raise ConfigError(f"--rate {rate:g} is out of range: use 0 < requests/s <= {MAX_RATE:g}")
    if not 1 <= k <= 100:
        raise ConfigError(f"--k {k} is out of range: use 1..100")
    traffic = _Traffic(world, url, rate, duration, seed, k, scenario, max_in_flight, token)
    return asyncio.run(traffic.run(progress))
