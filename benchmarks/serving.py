"""Serving benchmark: latency, throughput, cache hit rate and failover through Envoy.

Starts the local stack (Redis, model servers, caching gateways, Envoy) on free loopback
ports and drives it with an open-loop asyncio load generator (raw keep-alive HTTP/1.1) replaying a
frequent-user trace (Zipf over users). Every figure comes from this one run:

- floor: the SavedModel's ``recommend`` signature called in-process;
- baseline: Envoy's own ``/ping`` direct response at the same offered load (what the load
  generator and one proxy hop cost, with no gateway or model behind them);
- warm-up: the trace's first ``--warmup`` seconds (default 20) at 200 req/s, printed as its
  own row: a cold cache, whose hit rate is bounded by the users not seen yet;
- steps: offered loads (default 100, 200, 300, 600 req/s): p50/p95/p99 for cache hits and
  misses, achieved throughput, hit rate, errors, and end-to-end p50 / floor p50;
- failover at 200 req/s: kill a model server, then a gateway, then Redis; failed requests
  and the time until the killed replica is back in rotation.

Latency is measured from each request's *scheduled* send time, so a generator or stack
that falls behind shows up in the figures (no coordinated omission).

    .venv/bin/python benchmarks/serving.py [--rates 100,200,300,600] [--duration 10] [--warmup 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pathlib
import signal
import sys
import tempfile
import threading
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from serving.envoy.config import CLUSTER_GATEWAY_REST, CLUSTER_MODEL_GRPC  # noqa: E402
from serving.envoy.runtime import healthy_members  # noqa: E402
from serving.launcher import ServingStack, model_versions  # noqa: E402
from serving.process import free_port, redis_ping, wait_until  # noqa: E402
from serving.settings import DEFAULT_MODEL_BASE_PATH, ServingSettings  # noqa: E402

TARGET_RATE = 200


def _run(coro):
    """Run one load step on uvloop: the generator's own CPU per request is part of every
    figure on these shared cores, and libuv's loop costs less of it than asyncio's."""
    import uvloop

    return uvloop.run(coro)


_RECOMMEND = "/v1/recommendations"


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


REQUEST_TIMEOUT_S = 5.0
CONNECTIONS = 64


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


def stack_cpu_seconds(stack: ServingStack) -> float:
    """User+system CPU seconds used so far by every live child of the stack."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for child in stack.children:
        try:
            fields = pathlib.Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


def pct(values: list[float] | np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


def in_process_floor(base_path: pathlib.Path, calls: int = 300) -> tuple[float, float]:
    """p50/p95 ms of the SavedModel's `recommend` signature called directly, batch of one,
    the way the model server runs it (a Session step; no transport, no request proto)."""
    import numpy as np

    from serving.model_server.servable import Servable

    version = model_versions(base_path)[-1]
    signature = Servable("floor", version, base_path / str(version)).signature("recommend")
    inputs = {}
    for name, dtype in signature.input_dtypes.items():
        if dtype.name == "string":
            inputs[name] = np.array([b"user-00001"], dtype=object)
        elif dtype.is_floating:
            inputs[name] = np.array([np.nan], dtype=dtype.as_numpy_dtype)
        else:
            inputs[name] = np.array([10], dtype=dtype.as_numpy_dtype)
    for _ in range(20):
        signature.call(inputs)
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        signature.call(inputs)
        times.append((time.perf_counter() - t0) * 1000)
    return pct(times, 50), pct(times, 95)


def fixture_model(tmp: pathlib.Path) -> pathlib.Path:
    """The tests' tiny real SavedModel, until the pipeline has pushed one."""
    sys.path.insert(0, str(REPO / "tests" / "fixtures"))
    from recommend_model import build_recommend_model

    base = tmp / "lead_recommender"
    build_recommend_model(base, version=1)
    return base


def print_step(
    label: str, rate: float, r: Result, floor_p50: float | None, ideal: float | None = None
) -> dict:
    lat = np.array(r.latency_ms)
    cached = np.array(r.cached, dtype=bool)
    hits, misses = lat[cached] if len(lat) else lat, lat[~cached] if len(lat) else lat
    achieved = len(lat) / r.elapsed if r.elapsed else 0.0
    hit_rate = cached.mean() if len(cached) else float("nan")
    row = {
        "hit_p50": pct(hits, 50), "hit_p95": pct(hits, 95), "hit_p99": pct(hits, 99),
        "miss_p50": pct(misses, 50), "miss_p95": pct(misses, 95), "miss_p99": pct(misses, 99),
        "all_p50": pct(lat, 50), "hit_rate": hit_rate, "errors": r.n_errors,
    }  # fmt: skip
    ratio = f"{row['all_p50'] / floor_p50:6.1f}x" if floor_p50 else "   -  "
    print(
        f"{label:<9}{rate:>6.0f} {achieved:>8.1f} | "
        f"{row['hit_p50']:6.2f} {row['hit_p95']:6.2f} {row['hit_p99']:6.2f} | "
        f"{row['miss_p50']:6.2f} {row['miss_p95']:6.2f} {row['miss_p99']:6.2f} | "
        f"{hit_rate * 100:5.1f}% {len(misses):>5} {r.n_errors:>5} | {ratio} "
        f"lag p99 {pct(r.send_lag_ms, 99):.1f}"
        + (f"  ideal hit rate {ideal * 100:.1f}%" if ideal is not None else "")
        + (f"  {r.errors}" if r.errors else ""),
        flush=True,
    )
    # The same answers timed from their actual send: without the generator's own lateness
    # (timer granularity, sharing the cores), which the scheduled-time figures above include.
    sent = np.array(r.service_ms)
    s_hits, s_misses = (sent[cached], sent[~cached]) if len(sent) else (sent, sent)
    row.update(sent_hit_p95=pct(s_hits, 95), sent_miss_p95=pct(s_misses, 95))
    print(
        f"{'':9}from send: hit p50 {pct(s_hits, 50):.2f} p95 {pct(s_hits, 95):.2f}, miss p50 "
        f"{pct(s_misses, 50):.2f} p95 {pct(s_misses, 95):.2f}; generator lag p50 "
        f"{pct(r.send_lag_ms, 50):.2f} p95 {pct(r.send_lag_ms, 95):.2f}",
        flush=True,
    )
    return row


HEADER = (
    f"{'step':<9}{'offer':>6} {'achieved':>8} | {'hit p50':>6} {'p95':>6} {'p99':>6} | "
    f"{'miss50':>6} {'p95':>6} {'p99':>6} | {'hits':>6} {'miss':>5} {'errs':>5} | "
    "p50/floor  (ms)"
)


def failover(stack: ServingStack, url: str, users: list[str], duration: float, rate: float) -> None:
    """Kill a model server, then a gateway, then Redis, each under load at ``rate``."""
    admin = stack.settings.envoy.admin_port
    redis = stack.settings.redis
    victims = [
        ("model-server-0", lambda: healthy_members(admin, CLUSTER_MODEL_GRPC)
         == len(stack.topology.model_servers)),
        ("gateway-0", lambda: healthy_members(admin, CLUSTER_GATEWAY_REST)
         == len(stack.topology.gateways)),
        ("redis", lambda: redis_ping(redis.host, redis.port)),
    ]  # fmt: skip
    print(f"\nfailover under {rate:.0f} req/s (kill -9 one process per phase)")
    print(
        f"{'killed':<16}{'requests':>9}{'failed':>8}{'restarted after':>17}{'in rotation after':>19}"
    )
    for name, back_in_rotation in victims:
        child = stack.child(name)
        results: list[Result] = []

        def drive(out: list[Result] = results, trace: list[str] = users) -> None:
            out.append(
                _run(run_load(url, trace, rate, duration, _RECOMMEND, headers=stack.auth_headers()))
            )

        load = threading.Thread(target=drive)
        load.start()
        time.sleep(min(2.0, duration / 4))
        killed_at = time.monotonic()
        child.signal(signal.SIGKILL)

        def restarts(who: str = name, since: float = killed_at) -> list[float]:
            return [t for t, n in list(stack.restart_log) if n == who and t > since]

        wait_until(lambda: bool(restarts()), 60, f"{name} restart")
        restarted = restarts()[0] - killed_at
        # The new process serves, and Envoy routes to every replica again.
        wait_until(
            lambda c=child, ok=back_in_rotation: c.ready() and ok(),
            240,
            f"{name} back in rotation",
            interval=0.05,
        )
        in_rotation = time.monotonic() - killed_at
        load.join()
        users = users[int(rate * duration) :]
        r = results[0]
        total = len(r.latency_ms) + r.n_errors
        print(
            f"{name:<16}{total:>9}{r.n_errors:>8}{restarted:>15.1f} s{in_rotation:>17.1f} s"
            + (f"  {r.errors}" if r.errors else ""),
            flush=True,
        )
        wait_until(stack.fully_routed, 240, "stack fully routed again")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="100,200,300,600", help="offered loads, req/s")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per step (<=60)")
    parser.add_argument(
        "--warmup",
        type=float,
        default=20.0,
        help=f"seconds of the trace replayed at {TARGET_RATE} req/s before the steps, printed "
        "as its own row, so the steps see a warm cache as in production (0: start cold; <=120)",
    )
    parser.add_argument("--users", type=int, default=1000, help="distinct users in the trace")
    parser.add_argument("--zipf", type=float, default=1.3, help="Zipf exponent of user ranks")
    parser.add_argument("--model-servers", type=int, default=2)
    parser.add_argument("--gateways", type=int, default=2)
    parser.add_argument("--model-base-path", type=pathlib.Path, default=None)
    parser.add_argument("--failover-rate", type=float, default=TARGET_RATE, help="req/s")
    parser.add_argument("--skip-failover", action="store_true")
    args = parser.parse_args()
    rates = [float(x) for x in args.rates.split(",")]
    if not 1 <= args.duration <= 60 or not all(0 < x <= 5000 for x in [*rates, args.failover_rate]):
        parser.error("--duration must be 1..60 s and each rate 1..5000 req/s")
    if not 0 <= args.warmup <= 120:
        parser.error("--warmup must be 0..120 s")

    # Other work on the machine shows up in every figure: print it with them.
    print("load average at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()), flush=True)
    with tempfile.TemporaryDirectory(prefix="aiqleads-bench-") as tmp_name:
        tmp = pathlib.Path(tmp_name)
        base = args.model_base_path or DEFAULT_MODEL_BASE_PATH
        if not model_versions(base):
            print(f"no pushed model under {base}; using the tests' fixture SavedModel", flush=True)
            base = fixture_model(tmp)
        floor_p50, floor_p95 = in_process_floor(base)
        print(f"in-process floor (recommend signature, batch 1): p50 {floor_p50:.3f} ms, "
              f"p95 {floor_p95:.3f} ms", flush=True)  # fmt: skip

        settings = ServingSettings().with_overrides(
            **{
                "model_base_path": str(base),
                "run_dir": str(tmp / "run"),
                "envoy.port": free_port(),
                "model_servers.replicas": args.model_servers,
                "gateways.replicas": args.gateways,
                "envoy.rate_limit.requests_per_second": 100_000,
                "envoy.rate_limit.burst": 100_000,
            }
        )
        stack = ServingStack(settings, progress=lambda line: print(f"  [stack] {line}", flush=True))
        stack.start()
        stop = threading.Event()
        supervisor = threading.Thread(target=stack.supervise, args=(stop,), daemon=True)
        supervisor.start()
        try:
            url = f"http://127.0.0.1:{stack.settings.envoy.port}"
            auth = stack.auth_headers()  # the stack's development token
            trace = zipf_users(args.users, args.zipf, 200_000, seed=7)
            print(f"\ntrace: Zipf({args.zipf}) over {args.users} users; "
                  f"{args.duration:.0f} s per step; latency in ms from scheduled send", flush=True)  # fmt: skip
            print(HEADER)
            offset = 0  # each step continues the trace; the cache stays warm as in production
            seen: set[str] = set()

            def next_users(n: int) -> tuple[list[str], float]:
                """The trace's next `n` users, and the best hit rate any cache could have on
                them: the share of requests whose user already came before."""
                nonlocal offset
                users, repeats = trace[offset : offset + n], 0
                for user in users:
                    repeats += user in seen
                    seen.add(user)
                offset += n
                return users, repeats / n

            if args.warmup:
                # A cache's hit rate grows with the traffic it has seen: the first seconds of
                # a trace are all first visits. The steps measure a cache that has seen
                # `--warmup` seconds of it (with the default 300 s TTL, production's steady state on
                # this trace is higher still); the cold figures are this row's.
                users, ideal = next_users(int(TARGET_RATE * args.warmup))
                r = _run(run_load(url, users, TARGET_RATE, args.warmup, _RECOMMEND, headers=auth))
                print_step("warm-up", TARGET_RATE, r, floor_p50, ideal)
            for rate in rates:
                n = int(rate * args.duration)
                users, ideal = next_users(n)
                base_r = _run(run_load(url, users, rate, args.duration, "/ping", headers=auth))
                print_step("baseline", rate, base_r, None)
                cpu0, gen0 = stack_cpu_seconds(stack), time.process_time()
                r = _run(run_load(url, users, rate, args.duration, _RECOMMEND, headers=auth))
                print_step("stack", rate, r, floor_p50, ideal)
                done = max(len(r.latency_ms), 1)
                print(
                    f"{'':9}CPU per answered request: stack "
                    f"{(stack_cpu_seconds(stack) - cpu0) / done * 1000:.2f} ms, load generator "
                    f"{(time.process_time() - gen0) / done * 1000:.2f} ms; load average "
                    "{:.1f}".format(os.getloadavg()[0]),
                    flush=True,
                )
            if not args.skip_failover:
                failover(stack, url, trace[offset:], max(args.duration, 10.0), args.failover_rate)
        finally:
            stop.set()
            supervisor.join()
            stack.stop()
    print("load average at end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    print(f"\ntargets at {TARGET_RATE} req/s: miss p95 < 10 ms, hit p95 < 3 ms, "
          "hit rate > 95%, zero errors")  # fmt: skip


if __name__ == "__main__":
    main()
