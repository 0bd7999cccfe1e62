"""Chaos under load: kill -9 each part of the local stack in turn while it serves traffic.

Starts its own stack (`ServingStack`, authentication on, two model servers, two gateways,
free loopback ports) on the fixture model, drives recommendations through Envoy at
``--rate`` (open loop, a Zipf trace) plus feedback on the answers at ``--feedback-rate``,
and meanwhile sends SIGKILL, evenly spaced, to a model server, a gateway, the Redis cache,
the event store and Envoy itself; the supervisor restarts each.

    .venv/bin/python benchmarks/chaos.py [--minutes 10] [--rate 200] [--feedback-rate 20]

What it reports, per fault:

- **failed**: requests that failed in the fault's window. A request belongs to the last
  fault killed before it *finished* (a request in flight at the kill is the fault's), so
  the windows split the run and no failure is counted twice; failures before the first
  kill are reported apart. A recommendation fails on anything but a 200; a feedback fails
  when the client's retries (up to 5, on 0/429/502/503/504, with its idempotency key) did
  not get an acknowledgement. Feedback that needed a retry is counted too (``retried``).
- **back**: seconds from the kill until the killed child was restarted and ready (its own
  probe: a model server serving the model, a gateway's /healthz, a Redis PING, Envoy's
  /ready), the front door answers /ping, both stores answer PING, and Envoy routes to every
  gateway and model server again.
- **errors for**: seconds from the kill until the last failed request of the window
  finished (0 when none failed): from then on every request succeeded.

Over the run: the availability of recommendations, of feedback and of both (successes over
requests); and whether every acknowledged feedback id is in the event store (none lost).

A fault is placed at its slot (``minutes / 6`` apart), but never before the previous one's
``back`` plus a few seconds of settling, so windows never overlap a recovery in progress.
A killed Envoy is the front door itself: requests in flight on it fail and new ones are
refused until it is back (the supervisor's backoff plus Envoy's start); faults behind Envoy
should cost nothing (retries on another replica, the cache's circuit breaker, feedback
retried by the client on a 503 while the event store restarts). Targets: availability above
99.9% over the run, and no failed request for faults behind Envoy.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import pathlib
import shutil
import signal
import sys
import tempfile
import threading
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from aiqleads.events.log import EventLog  # noqa: E402
from aiqleads.events.records import FEEDBACK_STREAM, Feedback  # noqa: E402
from benchmarks.harness import load, stacks  # noqa: E402
from serving.launcher import ServingStack  # noqa: E402
from serving.process import http_status, redis_ping  # noqa: E402
from serving.settings import ServingSettings  # noqa: E402

FAULTS = ("model-server-0", "gateway-0", "redis", "event-store", "envoy")
BEHIND_ENVOY = FAULTS[:-1]
REQUEST_TIMEOUT_S = 5.0
FEEDBACK_RETRIES = 5
RETRY_STATUSES = (0, 429, 502, 503, 504)  # what a client retries (0: no answer)
SETTLE_S = 5.0  # after a fault's recovery, before the next one may be placed
RECOVERY_TIMEOUT_S = 180.0  # a child not back by then is reported as not back
TAIL_S = 10.0  # the run goes on at least this long after the last recovery
POLL_S = 0.05
AVAILABILITY_TARGET = 0.999
BEFORE = "(before faults)"
MAX_LISTED_FAILURES = 500


@dataclasses.dataclass
class Outcome:
    due: float  # monotonic time the request was due (feedback: its first attempt)
    done: float  # monotonic time it finished (feedback: its last attempt)
    kind: str  # recommend / feedback
    ok: bool
    status: int  # the last answer's status, 0 when nothing answered
    attempts: int = 1


@dataclasses.dataclass
class Fault:
    name: str
    killed_at: float
    back_at: float | None = None
    waiting_on: str = ""  # what was still missing when recovery timed out

    @property
    def back_s(self) -> float | None:
        return None if self.back_at is None else self.back_at - self.killed_at


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
        status, answer = await self._post(session, load.RECOMMEND, {"user_id": user, "k": 5})
        self.outcomes.append(Outcome(due, time.monotonic(), "recommend", status == 200, status))
        every = max(1, round(self.args.rate / self.args.feedback_rate))
        if status == 200 and answer and answer.get("items") and i % every == 0:
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
        status, acknowledged, attempts = 0, False, 0
        for attempt in range(FEEDBACK_RETRIES + 1):
            attempts += 1
            status, receipt = await self._post(session, "/v1/feedback", body)
            if status == 200 and receipt and receipt.get("accepted"):
                self.acknowledged.append(body["feedback_id"])
                acknowledged = True
                break
            if status not in RETRY_STATUSES:
                break
            await asyncio.sleep(0.2 * 2**attempt)  # the client's retry with its idempotency key
        self.outcomes.append(
            Outcome(due, time.monotonic(), "feedback", acknowledged, status, attempts)
        )

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


def missing(stack: ServingStack, name: str, restarts_before: int) -> str:
    """What still keeps the killed child from counting as back ("" once it is)."""
    child = stack.child(name)
    if child.restarts <= restarts_before or not child.running():
        return "not restarted yet"
    if not child.ready():
        return "restarted, not ready"
    s = stack.settings
    if http_status(f"http://{s.envoy.host}:{s.envoy.port}/ping")[0] != 200:
        return "front door not answering /ping"
    for store in (s.redis, s.event_store):
        if not redis_ping(store.host, store.port):
            return f"no PING from {store.host}:{store.port}"
    if not stack.fully_routed():
        return "envoy not routing to every replica"
    return ""


def supervise_for(stack: ServingStack, seconds: float) -> None:
    """Keep restarting children (from this, the starting thread) for ``seconds``."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        stack.supervise_once()
        time.sleep(POLL_S)


def inject(stack: ServingStack, name: str, start: float) -> Fault:
    """kill -9 ``name`` and supervise until it is back (or RECOVERY_TIMEOUT_S)."""
    child = stack.child(name)
    restarts_before = child.restarts
    child.signal(signal.SIGKILL)
    fault = Fault(name, time.monotonic())
    print(f"kill -9 {name} (pid {child.pid}) at {fault.killed_at - start:.1f} s", flush=True)
    last_check = 0.0
    while time.monotonic() < fault.killed_at + RECOVERY_TIMEOUT_S:
        stack.supervise_once()
        if time.monotonic() - last_check >= 0.1:
            last_check = time.monotonic()
            fault.waiting_on = missing(stack, name, restarts_before)
            if not fault.waiting_on:
                fault.back_at = last_check
                print(f"  {name} back after {fault.back_s:.1f} s", flush=True)
                break
        time.sleep(POLL_S)
    else:
        print(f"  {name} not back after {RECOVERY_TIMEOUT_S:.0f} s: {fault.waiting_on}")
    return fault


def lost_feedback(stack: ServingStack, acknowledged: list[str]) -> list[str]:
    log = EventLog(stack.settings.event_store.url)
    try:
        stored = {Feedback.decode(e.raw).feedback_id for e in log.range(FEEDBACK_STREAM)}
    finally:
        log.close()
    return [fid for fid in acknowledged if fid not in stored]


def chaos_settings(tmp_path: pathlib.Path, base: pathlib.Path, overrides: list[str]):
    return ServingSettings().with_overrides(
        **{
            "model_base_path": str(base),
            "run_dir": str(tmp_path / "run"),
            "envoy.port": 0,
            "monitoring": False,
            "model_servers.replicas": 2,
            "gateways.replicas": 2,
            "envoy.health_check.interval_ms": 1000,
            # The load test sends everything as one client: its own bucket above the rate.
            "auth.client_rate_limit.requests_per_second": 5000,
            "auth.client_rate_limit.burst": 10000,
            **dict(o.split("=", 1) for o in overrides),
        }
    )


def run(args) -> dict:
    with tempfile.TemporaryDirectory(prefix="aiqleads-chaos-") as tmp:
        tmp_path = pathlib.Path(tmp)
        base = stacks.fixture_model(tmp_path)
        settings = chaos_settings(tmp_path, base, args.set)
        stack = ServingStack(settings, progress=lambda line: print(f"  [stack] {line}", flush=True))
        stack.start()
        s = stack.settings
        users = load.zipf_users(1000, 1.3, 200_000, seed=11)
        traffic = Traffic(
            f"http://{s.envoy.host}:{s.envoy.port}", stack.auth_headers(), users, args
        )
        faults: list[Fault] = []
        names = args.faults.split(",")
        spacing = args.minutes * 60 / (len(names) + 1)
        start = time.monotonic()
        traffic.thread.start()
        try:
            for n, name in enumerate(names, start=1):
                earliest = (
                    faults[-1].killed_at + (faults[-1].back_s or 0) + SETTLE_S if faults else 0
                )
                supervise_for(stack, max(start + n * spacing, earliest) - time.monotonic())
                faults.append(inject(stack, name, start))
            last = faults[-1]
            end = max(start + args.minutes * 60, (last.back_at or last.killed_at) + TAIL_S)
            supervise_for(stack, end - time.monotonic())
        finally:
            traffic.stop.set()
            while traffic.thread.is_alive():
                stack.supervise_once()
                traffic.thread.join(timeout=0.1)
            elapsed = time.monotonic() - start
            try:
                lost = lost_feedback(stack, traffic.acknowledged)
            finally:
                stack.stop()
                if args.keep_logs:
                    shutil.copytree(s.run_dir / "logs", args.keep_logs, dirs_exist_ok=True)
    return report(traffic, faults, lost, start, elapsed, args)


def windows(outcomes: list[Outcome], faults: list[Fault]) -> dict[str, list[Outcome]]:
    """Each outcome under the last fault killed before it finished (BEFORE: none yet)."""
    out: dict[str, list[Outcome]] = {BEFORE: [], **{f.name: [] for f in faults}}
    for o in outcomes:
        owner = BEFORE
        for f in faults:
            if f.killed_at <= o.done:
                owner = f.name
        out[owner].append(o)
    return out


def _fraction(outcomes: list[Outcome]) -> float | None:
    return sum(o.ok for o in outcomes) / len(outcomes) if outcomes else None


def report(
    traffic: Traffic, faults: list[Fault], lost: list[str], start: float, elapsed: float, args
) -> dict:
    outcomes = list(traffic.outcomes)
    by_window = windows(outcomes, faults)
    rows = []
    for name, window in by_window.items():
        fault = next((f for f in faults if f.name == name), None)
        failed = [o for o in window if not o.ok]
        errors_for = max((o.done for o in failed), default=None)
        rows.append(
            {
                "fault": name,
                "behind_envoy": name in BEHIND_ENVOY,
                "back_s": fault.back_s if fault else None,
                "waiting_on": fault.waiting_on if fault and fault.back_at is None else "",
                "errors_for_s": (
                    (errors_for - fault.killed_at if errors_for is not None else 0.0)
                    if fault
                    else None
                ),
                "requests": len(window),
                "failed_recommend": sum(o.kind == "recommend" for o in failed),
                "failed_feedback": sum(o.kind == "feedback" for o in failed),
                "retried_feedback": sum(o.kind == "feedback" and o.attempts > 1 for o in window),
                "statuses": sorted({o.status for o in failed}),
                # When each failed (seconds after the kill, or the run's start), for a reader.
                "failures": [
                    [round(o.done - (fault.killed_at if fault else start), 3), o.kind, o.status]
                    for o in failed[:MAX_LISTED_FAILURES]
                ],
            }
        )
    recommend = [o for o in outcomes if o.kind == "recommend"]
    feedback = [o for o in outcomes if o.kind == "feedback"]
    summary = {
        "faults": [r for r in rows if r["fault"] != BEFORE],
        "before_faults": next(r for r in rows if r["fault"] == BEFORE),
        "recommend_total": len(recommend),
        "recommend_availability": _fraction(recommend),
        "feedback_total": len(feedback),
        "feedback_availability": _fraction(feedback),
        "availability": _fraction(outcomes),
        "acknowledged_feedback": len(traffic.acknowledged),
        "lost_feedback": len(lost),
        "minutes": args.minutes,
        "elapsed_s": elapsed,
        "rate": args.rate,
        "feedback_rate": args.feedback_rate,
    }
    print(
        f"\n{'window':<17}{'back s':>7}{'errors for s':>13}{'requests':>9}{'failed rec':>11}"
        f"{'failed fb':>10}{'retried fb':>11}  statuses"
    )
    for r in rows:
        back = (
            "-"
            if r["fault"] == BEFORE
            else "never"
            if r["back_s"] is None
            else f"{r['back_s']:.1f}"
        )
        errors_for = "-" if r["errors_for_s"] is None else f"{r['errors_for_s']:.1f}"
        print(
            f"{r['fault']:<17}{back:>7}{errors_for:>13}{r['requests']:>9}"
            f"{r['failed_recommend']:>11}{r['failed_feedback']:>10}{r['retried_feedback']:>11}"
            f"  {r['statuses']}{'  waiting on: ' + r['waiting_on'] if r['waiting_on'] else ''}"
        )
    behind_failed = sum(
        r["failed_recommend"] + r["failed_feedback"] for r in summary["faults"] if r["behind_envoy"]
    )
    print(
        f"\nover {elapsed / 60:.1f} min at {args.rate:g} req/s: availability "
        f"{summary['availability']:.5%} (target > {AVAILABILITY_TARGET:.1%}; recommendations "
        f"{summary['recommend_availability']:.5%} of {len(recommend)}, feedback "
        f"{summary['feedback_availability'] or 0:.5%} of {len(feedback)}); failed behind Envoy "
        f"{behind_failed} (target 0); acknowledged feedback {len(traffic.acknowledged)}, "
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
    parser.add_argument(
        "--faults",
        default=",".join(FAULTS),
        help=f"comma-separated children to kill, in order (default {','.join(FAULTS)})",
    )
    parser.add_argument("--keep-logs", type=pathlib.Path, help="copy the stack's logs here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    print(f"load average at start: {os.getloadavg()}", flush=True)
    summary = run(args)
    summary["load_average_end"] = os.getloadavg()
    print(f"load average at the end: {summary['load_average_end']}")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
    return summary


if __name__ == "__main__":
    main()
