"""Chaos under load: kill -9 each part of the local stack in turn while it serves traffic.

Starts its own stack (`ServingStack`, authentication on, free loopback ports) on the fixture
model, drives recommendations through Envoy at ``--rate`` (open loop, a Zipf trace) plus
feedback on the answers at ``--feedback-rate``, and meanwhile sends SIGKILL, evenly spaced, to
a model server, a gateway, the Redis cache, the event store and Envoy itself; the supervisor
restarts each. Prints, per fault, the failed requests and feedback around it and the time
until the stack answered and routed to every replica again; over the run, the availability
of recommendations and of feedback; and whether every acknowledged feedback is in the event
log (none lost).

    .venv/bin/python benchmarks/chaos.py [--minutes 10] [--rate 200] [--feedback-rate 20]

A killed Envoy is the front door itself: requests in flight on it fail and new ones are
refused until it is back (the supervisor's backoff plus Envoy's start), so its faults count
against the availability target (> 99.9% over the run); faults behind Envoy should cost
nothing (retries on another replica, the cache's circuit breaker, feedback retried by the
client on a 503 while the event store restarts).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib.util
import json
import os
import pathlib
import signal
import sys
import tempfile
import threading
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from aiqleads.events.log import EventLog  # noqa: E402
from aiqleads.events.records import FEEDBACK_STREAM, Feedback  # noqa: E402
from serving.launcher import ServingStack  # noqa: E402
from serving.process import http_status, redis_ping  # noqa: E402
from serving.settings import ServingSettings  # noqa: E402

FAULTS = ("model-server-0", "gateway-0", "redis", "event-store", "envoy")
BEHIND_ENVOY = FAULTS[:-1]
REQUEST_TIMEOUT_S = 5.0
FEEDBACK_RETRIES = 5
WINDOW_AFTER_S = 5.0  # failures this long after a fault's recovery still count against it


def _load_serving_bench():
    spec = importlib.util.spec_from_file_location(
        "bench_serving", REPO / "benchmarks" / "serving.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_serving"] = module
    spec.loader.exec_module(module)
    return module


@dataclasses.dataclass
class Outcome:
    at: float  # monotonic time the request was due
    kind: str  # recommend / feedback
    ok: bool
    status: int


@dataclasses.dataclass
class Fault:
    name: str
    killed_at: float
    recovered_at: float | None = None

    @property
    def recovery_s(self) -> float | None:
        return None if self.recovered_at is None else self.recovered_at - self.killed_at


class Traffic:
    """Open-loop recommendations plus feedback on their answers, in a thread of its own."""

    def __init__(self, front: str, headers: dict[str, str], users: list[str], args) -> None:
        self.front, self.headers, self.users, self.args = front, headers, users, args
        self.outcomes: list[Outcome] = []
        self.acknowledged: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _post(self, session, path: str, body: dict) -> tuple[int, dict | None]:
        import aiohttp

        try:
            async with session.post(self.front + path, json=body) as response:
                payload = await response.json(content_type=None)
                return response.status, payload if isinstance(payload, dict) else None
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
            return 0, None

    async def _recommend(self, session, i: int, due: float) -> None:
        user = self.users[i % len(self.users)]
        status, answer = await self._post(session, "/v1/recommendations", {"user_id": user, "k": 5})
        self.outcomes.append(Outcome(due, "recommend", status == 200, status))
        if (
            status == 200
            and answer
            and i % max(1, round(self.args.rate / self.args.feedback_rate)) == 0
        ):
            await self._feedback(session, user, answer, i)

    async def _feedback(self, session, user: str, answer: dict, i: int) -> None:
        due = time.monotonic()
        body = {
            "request_id": answer["request_id"],
            "user_id": user,
            "lead_id": answer["items"][0]["lead_id"],
            "event_type": "click",
            "feedback_id": f"chaos-{os.getpid()}-{i}",
        }
        status = 0
        for attempt in range(FEEDBACK_RETRIES + 1):
            status, receipt = await self._post(session, "/v1/feedback", body)
            if status == 200 and receipt and receipt.get("accepted"):
                self.acknowledged.append(body["feedback_id"])
                break
            if status not in (0, 429, 502, 503, 504):
                break
            await asyncio.sleep(0.2 * 2**attempt)  # the client's retry with its idempotency key
        self.outcomes.append(Outcome(due, "feedback", status == 200, status))

    async def _run(self) -> None:
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
        connector = aiohttp.TCPConnector(limit=256)
        tasks: set[asyncio.Task] = set()
        async with aiohttp.ClientSession(
            timeout=timeout, connector=connector, headers=self.headers
        ) as session:
            start, i = time.monotonic(), 0
            while not self.stop.is_set():
                due = start + i / self.args.rate
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                task = asyncio.create_task(self._recommend(session, i, due))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                i += 1
            if tasks:
                await asyncio.wait(tasks, timeout=REQUEST_TIMEOUT_S * (FEEDBACK_RETRIES + 2))


def recovered(stack: ServingStack, name: str) -> bool:
    """Whether the killed part is back: restarted, ready, and the stack fully routed."""
    child = stack.child(name)
    if child.exit_code() is not None or not child.ready():
        return False
    s = stack.settings
    front_up = http_status(f"http://{s.envoy.host}:{s.envoy.port}/ping")[0] == 200
    stores = redis_ping(s.redis.host, s.redis.port) and redis_ping(
        s.event_store.host, s.event_store.port
    )
    return front_up and stores and stack.fully_routed()


def lost_feedback(stack: ServingStack, acknowledged: list[str]) -> list[str]:
    log = EventLog(stack.settings.event_store.url)
    try:
        stored = {Feedback.decode(e.raw).feedback_id for e in log.range(FEEDBACK_STREAM)}
    finally:
        log.close()
    return [fid for fid in acknowledged if fid not in stored]


def run(args) -> dict:
    bench = _load_serving_bench()
    with tempfile.TemporaryDirectory(prefix="aiqleads-chaos-") as tmp:
        tmp_path = pathlib.Path(tmp)
        base = bench.fixture_model(tmp_path)
        settings = ServingSettings().with_overrides(
            **{
                "model_base_path": str(base),
                "run_dir": str(tmp_path / "run"),
                "envoy.port": 0,
                "monitoring": False,
                "envoy.health_check.interval_ms": 1000,
                # The load test sends everything as one client: its own bucket above the rate.
                "auth.client_rate_limit.requests_per_second": 5000,
                "auth.client_rate_limit.burst": 10000,
                **dict(o.split("=", 1) for o in args.set),
            }
        )
        stack = ServingStack(settings, progress=lambda line: print(f"  [stack] {line}", flush=True))
        stack.start()
        s = stack.settings
        users = bench.zipf_users(1000, 1.3, 200_000, seed=11)
        traffic = Traffic(
            f"http://{s.envoy.host}:{s.envoy.port}", stack.auth_headers(), users, args
        )
        faults: list[Fault] = []
        duration = args.minutes * 60
        spacing = duration / (len(FAULTS) + 1)
        start = time.monotonic()
        traffic.thread.start()
        try:
            for n, name in enumerate(FAULTS, start=1):
                kill_at = start + n * spacing
                while time.monotonic() < kill_at:  # supervise from this (the starting) thread
                    stack.supervise_once()
                    time.sleep(0.05)
                stack.child(name).signal(signal.SIGKILL)
                fault = Fault(name, time.monotonic())
                faults.append(fault)
                print(f"kill -9 {name} at {fault.killed_at - start:.0f} s", flush=True)
                while time.monotonic() < fault.killed_at + min(spacing, 120):
                    stack.supervise_once()
                    if fault.recovered_at is None and recovered(stack, name):
                        fault.recovered_at = time.monotonic()
                        print(f"  {name} back after {fault.recovery_s:.1f} s", flush=True)
                        break
                    time.sleep(0.05)
            while time.monotonic() < start + duration:
                stack.supervise_once()
                time.sleep(0.05)
        finally:
            traffic.stop.set()
            while traffic.thread.is_alive():
                stack.supervise_once()
                traffic.thread.join(timeout=0.1)
            lost = lost_feedback(stack, traffic.acknowledged)
            stack.stop()
    return report(traffic, faults, lost, start, args)


def report(traffic: Traffic, faults: list[Fault], lost: list[str], start: float, args) -> dict:
    outcomes = traffic.outcomes
    rows = []
    for fault in faults:
        end = (fault.recovered_at or fault.killed_at + 120) + WINDOW_AFTER_S
        window = [o for o in outcomes if fault.killed_at - 1 <= o.at <= end]
        failed = [o for o in window if not o.ok]
        rows.append(
            {
                "fault": fault.name,
                "behind_envoy": fault.name in BEHIND_ENVOY,
                "recovery_s": fault.recovery_s,
                "requests": len(window),
                "failed_recommend": sum(o.kind == "recommend" for o in failed),
                "failed_feedback": sum(o.kind == "feedback" for o in failed),
                "statuses": sorted({o.status for o in failed}),
            }
        )
    summary = {"faults": rows}
    for kind in ("recommend", "feedback"):
        mine = [o for o in outcomes if o.kind == kind]
        ok = sum(o.ok for o in mine)
        summary[f"{kind}_total"] = len(mine)
        summary[f"{kind}_availability"] = ok / len(mine) if mine else None
    everything = [o for o in outcomes]
    summary["availability"] = sum(o.ok for o in everything) / max(len(everything), 1)
    summary["acknowledged_feedback"] = len(traffic.acknowledged)
    summary["lost_feedback"] = len(lost)
    summary["minutes"] = args.minutes
    summary["rate"] = args.rate
    print(
        f"\n{'fault':<16}{'recovery s':>11}{'requests':>10}{'failed rec':>11}{'failed fb':>10}  statuses"
    )
    for r in rows:
        rec = f"{r['recovery_s']:.1f}" if r["recovery_s"] is not None else "never"
        print(
            f"{r['fault']:<16}{rec:>11}{r['requests']:>10}{r['failed_recommend']:>11}"
            f"{r['failed_feedback']:>10}  {r['statuses']}"
        )
    print(
        f"\navailability over {args.minutes:g} min at {args.rate:g} req/s: "
        f"{summary['availability']:.5%} (recommendations {summary['recommend_availability']:.5%} "
        f"of {summary['recommend_total']}, feedback {summary['feedback_availability'] or 0:.5%} "
        f"of {summary['feedback_total']}); acknowledged feedback {len(traffic.acknowledged)}, "
        f"lost {len(lost)}"
    )
    return summary


def parse_args(argv: list[str] | None = None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the run")
    parser.add_argument("--rate", type=float, default=200.0, help="recommendations per second")
    parser.add_argument(
        "--feedback-rate", type=float, default=20.0, help="feedback per second (on answers)"
    )
    parser.add_argument(
        "--set", action="append", default=[], help="settings override KEY=VALUE (dotted)"
    )
    parser.add_argument("--json", help="write the summary to this file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    print(f"load average at start: {os.getloadavg()}")
    summary = run(args)
    print(f"load average at the end: {os.getloadavg()}")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
    return summary


if __name__ == "__main__":
    main()
