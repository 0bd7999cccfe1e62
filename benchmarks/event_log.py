"""Event-log benchmark: the feedback path, the store's throughput, ingestion, the monitor's lag.

Every figure comes from this one run on free loopback ports:

1. **feedback vs hit**: the local stack (`aiqleads serve`'s `ServingStack`: Redis, model
   servers, gateways, Envoy, the event store with its default durability, the monitor) on
   the fixture recommender; a closed loop alternates a cached recommendation (the baseline)
   and a feedback on an earlier answer (appended to the event store before the answer),
   both through Envoy. p50/p95 of each over ``--rounds`` rounds, and feedback p95 / hit p95
   (target: at most 2).
2. **store throughput**: a fresh event store; feedback appends (the gateway's script) from
   ``redis-benchmark`` with 1 to 64 connections; the highest throughput whose p95 stays under
   10 ms.
3. **ingestion**: ``--ingest-events`` feedback and half as many impressions appended to a
   fresh store, then `aiqleads events ingest` into a copy of the smoke data set: events/s
   (target: at least 5,000).
4. **online-quality lag**: through the stack, a feedback posted after its answer until the
   monitor's /metrics counts it: median and p95 over ``--lag-samples`` (target: 15 s).

    .venv/bin/python benchmarks/event_log.py [--rounds 5] [--requests 400] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads: no banner
REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from aiqleads.events.log import FEEDBACK_APPEND, EventLog  # noqa: E402
from aiqleads.events.records import (  # noqa: E402
    FEEDBACK_ID_PREFIX,
    FEEDBACK_STREAM,
    RECORD_FIELD,
    Feedback,
    Impression,
)
from benchmarks.harness import stacks  # noqa: E402
from serving.command_lines import event_store_args  # noqa: E402
from serving.launcher import ServingStack  # noqa: E402
from serving.process import find_binary, free_port, redis_ping, wait_until  # noqa: E402
from serving.settings import EventStoreSettings, ServingSettings  # noqa: E402

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
P95_LIMIT_MS = 10.0


def pct(values, q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if len(values) else float("nan")


# -- 1. the feedback path against a cache hit --------------------------------------------
AUTH: dict[str, str] = {}  # the front door's bearer token, once the stack is up


async def feedback_vs_hit(front: str, rounds: int, requests: int, concurrency: int):
    import aiohttp

    users = [f"bench-user-{i}" for i in range(50)]
    async with aiohttp.ClientSession(headers=AUTH) as session:

        async def post(path: str, body: dict) -> dict:
            async with session.post(front + path, json=body) as response:
                payload = await response.json()
                if response.status != 200:
                    raise SystemExit(f"{path} answered {response.status}: {payload}")
                return payload

        answers = {}
        for user in users:  # warm the cache, and keep an answer per user to react to
            answers[user] = await post("/v1/recommendations", {"user_id": user, "k": 5})

        async def one_round(r: int) -> tuple[float, float, float, float]:
            hits: list[float] = []
            feedback: list[float] = []
            counter = iter(range(requests))

            async def worker() -> None:
                for i in counter:
                    user = users[i % len(users)]
                    start = time.perf_counter()
                    await post("/v1/recommendations", {"user_id": user, "k": 5})
                    hits.append((time.perf_counter() - start) * 1000)
                    answer = answers[user]
                    body = {
                        "request_id": answer["request_id"],
                        "user_id": user,
                        "lead_id": answer["items"][i % len(answer["items"])]["lead_id"],
                        "event_type": "click",
                        "feedback_id": f"bench-{r}-{i}",
                    }
                    start = time.perf_counter()
                    await post("/v1/feedback", body)
                    feedback.append((time.perf_counter() - start) * 1000)

            await asyncio.gather(*(worker() for _ in range(concurrency)))
            return pct(hits, 50), pct(hits, 95), pct(feedback, 50), pct(feedback, 95)

        return [await one_round(r) for r in range(rounds)]


# -- 2. the store's throughput at a 10 ms p95 --------------------------------------------
def start_store(directory: pathlib.Path) -> tuple[subprocess.Popen, EventStoreSettings]:
    settings = EventStoreSettings(port=free_port(), max_memory_mb=2048)
    argv = [find_binary("redis-server", "redis-server")]
    argv += event_store_args(settings, bind="127.0.0.1", directory=directory)
    directory.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: redis_ping("127.0.0.1", settings.port), 20, "event store")
    return process, settings


def store_throughput(url_port: int, clients: int, requests: int) -> tuple[float, float, float]:
    """(appends/s, p50 ms, p95 ms) of the feedback script from ``redis-benchmark`` (a C client,
    so the figure is the store's, not a Python load generator's), ``clients`` connections."""
    cli = find_binary("redis-cli", "the Debian package redis-tools")
    sha = subprocess.run(
        [cli, "-p", str(url_port), "script", "load", FEEDBACK_APPEND],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    record = Feedback("x", "r", time.time(), "u000001", "l000001", "click", 1, "stable", 0.0)
    result = subprocess.run(
        [find_binary("redis-benchmark", "the Debian package redis-tools"), "-p", str(url_port),
         "-n", str(requests), "-c", str(clients), "-r", "1000000000", "--csv",
         "evalsha", sha, "2", f"{FEEDBACK_ID_PREFIX}__rand_int__", FEEDBACK_STREAM,
         "3600", RECORD_FIELD, record.encode().decode()],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    row = result.stdout.strip().splitlines()[-1].rsplit('","', 7)
    values = [float(v.strip('"')) for v in row[1:]]
    return values[0], values[3], values[4]  # rps, p50, p95


# -- 3. ingestion -------------------------------------------------------------------------
def ingestion(tmp: pathlib.Path, events: int) -> tuple[int, float, float]:
    from aiqleads.data import synth

    data = tmp / "ingest-data"
    start_day = dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=14)
    synth.generate(synth.preset("smoke", start_date=start_day), data)
    users = [line.split(",", 1)[0] for line in (data / "users.csv").read_text().splitlines()[1:]]
    leads = [line.split(",", 1)[0] for line in (data / "leads.csv").read_text().splitlines()[1:]]
    process, settings = start_store(tmp / "ingest-store")
    try:
        log = EventLog(settings.url)
        now = time.time()
        answers = events // 2
        batch = []
        for i in range(answers):
            shown = tuple(leads[(i + j) % len(leads)] for j in range(10))
            batch.append(
                Impression(
                    f"r{i}", now, users[i % len(users)], 1, "stable", 10, shown, (0.5,) * 10, "miss"
                )  # fmt: skip
            )
            if len(batch) == 5000:
                log.append_impressions(batch)
                batch = []
        if batch:
            log.append_impressions(batch)
        pipe = log._redis.pipeline(transaction=False)  # noqa: SLF001 - bulk load for the run
        for i in range(events):
            r = i % answers
            fb = Feedback(f"f{i}", f"r{r}", now + 1, users[r % len(users)],
                          leads[(r + i % 10) % len(leads)], "view", 1, "stable", now)  # fmt: skip
            pipe.xadd(FEEDBACK_STREAM, {RECORD_FIELD: fb.encode()})
            if i % 5000 == 4999:
                pipe.execute()
        pipe.execute()
        log.close()
        started = time.perf_counter()
        result = subprocess.run(
            [str(pathlib.Path(sys.executable).parent / "aiqleads"), "events", "ingest",
             "--data", str(data), "--event-store", settings.url],
            capture_output=True, text=True, env=ENV,
        )  # fmt: skip
        seconds = time.perf_counter() - started
        if result.returncode != 0:
            raise SystemExit(f"ingest failed: {result.stderr[-2000:]}")
        return events + answers, seconds, (events + answers) / seconds
    finally:
        process.terminate()
        process.wait(10)


# -- 4. the monitor's lag -----------------------------------------------------------------
def monitor_count(url: str) -> float:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        text = response.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("aiqleads_online_events_total{") and 'event_type="purchase"' in line
    )


def monitor_lag(front: str, monitor: str, samples: int) -> list[float]:
    lags = []
    for i in range(samples):
        body = json.dumps({"user_id": f"lag-user-{i}", "k": 3}).encode()
        request = urllib.request.Request(
            f"{front}/v1/recommendations", body, {"content-type": "application/json", **AUTH}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = json.loads(response.read())
        time.sleep(0.5)  # the impression is written in the background; let it land first
        before = monitor_count(monitor)
        feedback = {
            "request_id": answer["request_id"],
            "user_id": f"lag-user-{i}",
            "lead_id": answer["items"][0]["lead_id"],
            "event_type": "purchase",
        }
        request = urllib.request.Request(
            f"{front}/v1/feedback",
            json.dumps(feedback).encode(),
            {"content-type": "application/json", **AUTH},
        )
        start = time.perf_counter()
        urllib.request.urlopen(request, timeout=10).read()
        wait_until(lambda b=before: monitor_count(monitor) > b, 60, "the monitor", interval=0.02)
        lags.append(time.perf_counter() - start)
    return lags


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=400, help="hit+feedback pairs a round")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--clients", default="1,4,16,64", help="connections per store step")
    parser.add_argument("--store-requests", type=int, default=50_000)
    parser.add_argument("--ingest-events", type=int, default=100_000)
    parser.add_argument("--lag-samples", type=int, default=20)
    args = parser.parse_args(argv)
    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f} at start")

    with tempfile.TemporaryDirectory(prefix="aiqleads-bench-events-") as tmp_name:
        tmp = pathlib.Path(tmp_name)
        base = stacks.fixture_model(tmp / "models")
        settings = ServingSettings(model_base_path=base, run_dir=tmp / "run").with_overrides(
            **{"envoy.port": free_port()}
        )
        stack = ServingStack(settings, progress=lambda msg: None)
        print("starting the stack (model servers, gateways, Envoy, event store, monitor) ...")
        with stack:
            s = stack.settings
            AUTH.update(stack.auth_headers())  # the stack's development token
            front = f"http://{s.envoy.host}:{s.envoy.port}"
            monitor = f"http://{s.monitor.host}:{s.monitor.port}"
            rounds = asyncio.run(
                feedback_vs_hit(front, args.rounds, args.requests, args.concurrency)
            )
            print(f"\n1. feedback (durable, appendfsync={s.event_store.appendfsync}) vs a cache"
                  f" hit, through Envoy, {args.concurrency} clients, {args.requests} pairs a "
                  "round")  # fmt: skip
            print("round  hit p50  hit p95  feedback p50  feedback p95  ratio p95")
            for i, (h50, h95, f50, f95) in enumerate(rounds, 1):
                print(f"{i:5d}  {h50:7.2f}  {h95:7.2f}  {f50:12.2f}  {f95:12.2f}  {f95 / h95:9.2f}")
            med = np.median(np.array(rounds), axis=0)
            print(f"median {med[0]:6.2f}  {med[1]:7.2f}  {med[2]:12.2f}  {med[3]:12.2f}  "
                  f"{med[3] / med[1]:9.2f}   (target: ratio <= 2)")  # fmt: skip

            lags = monitor_lag(front, monitor, args.lag_samples)
            print(f"\n4. online-quality lag, feedback -> monitor /metrics, {len(lags)} samples: "
                  f"median {np.median(lags):.2f} s, p95 {pct(lags, 95):.2f} s, max "
                  f"{max(lags):.2f} s (target: 15 s)")  # fmt: skip

        print("\n2. event store throughput: feedback appends (the gateway's script) from "
              "redis-benchmark, closed loop, by connections")  # fmt: skip
        process, store = start_store(tmp / "throughput-store")
        best = 0.0
        try:
            print("connections  appends/s  p50 ms  p95 ms")
            for clients in (int(c) for c in args.clients.split(",")):
                rps, p50, p95 = store_throughput(store.port, clients, args.store_requests)
                print(f"{clients:11d}  {rps:9.0f}  {p50:6.2f}  {p95:6.2f}")
                if p95 < P95_LIMIT_MS:
                    best = max(best, rps)
        finally:
            process.terminate()
            process.wait(10)
        print(f"highest throughput with p95 under {P95_LIMIT_MS:g} ms: {best:,.0f} events/s")

        events, seconds, rate = ingestion(tmp, args.ingest_events)
        print(f"\n3. ingestion: {events:,} events (feedback and impressions) in {seconds:.1f} s: "
              f"{rate:,.0f} events/s, the CLI's start included (target: 5,000)")  # fmt: skip
    shutil.rmtree(tmp_name, ignore_errors=True)


if __name__ == "__main__":
    main()
