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

from benchmarks.harness import load, stacks  # noqa: E402
from benchmarks.harness.load import pct  # noqa: E402
from serving.envoy.config import CLUSTER_GATEWAY_REST, CLUSTER_MODEL_GRPC  # noqa: E402
from serving.envoy.runtime import healthy_members  # noqa: E402
from serving.launcher import ServingStack, model_versions  # noqa: E402
from serving.process import redis_ping, wait_until  # noqa: E402

TARGET_RATE = 200


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
    times = [s * 1000 for s in load.timed_calls(lambda: signature.call(inputs), 20, calls)]
    return pct(times, 50), pct(times, 95)


def print_step(
    label: str, rate: float, r: load.Result, floor_p50: float | None, ideal: float | None = None
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
        results: list[load.Result] = []

        def drive(out: list[load.Result] = results, trace: list[str] = users) -> None:
            out.append(
                load.run_step(
                    load.run_load(
                        url, trace, rate, duration, load.RECOMMEND, headers=stack.auth_headers()
                    )
                )
            )

        driver = threading.Thread(target=drive)
        driver.start()
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
        driver.join()
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

    stacks.load_average("at start")
    with tempfile.TemporaryDirectory(prefix="aiqleads-bench-") as tmp_name:
        tmp = pathlib.Path(tmp_name)
        base = stacks.model_base(args.model_base_path, tmp)
        floor_p50, floor_p95 = in_process_floor(base)
        print(f"in-process floor (recommend signature, batch 1): p50 {floor_p50:.3f} ms, "
              f"p95 {floor_p95:.3f} ms", flush=True)  # fmt: skip

        settings = stacks.settings(
            base,
            tmp / "run",
            **{
                "model_servers.replicas": args.model_servers,
                "gateways.replicas": args.gateways,
            },
        )
        stack = ServingStack(settings, progress=lambda line: print(f"  [stack] {line}", flush=True))
        with stacks.supervised(stack):
            url = stacks.front_url(stack)
            auth = stack.auth_headers()  # the stack's development token
            trace = load.zipf_users(args.users, args.zipf, 200_000, seed=7)
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
                r = load.run_step(
                    load.run_load(
                        url, users, TARGET_RATE, args.warmup, load.RECOMMEND, headers=auth
                    )
                )
                print_step("warm-up", TARGET_RATE, r, floor_p50, ideal)
            for rate in rates:
                n = int(rate * args.duration)
                users, ideal = next_users(n)
                base_r = load.run_step(
                    load.run_load(url, users, rate, args.duration, "/ping", headers=auth)
                )
                print_step("baseline", rate, base_r, None)
                cpu0, gen0 = stack_cpu_seconds(stack), time.process_time()
                r = load.run_step(
                    load.run_load(url, users, rate, args.duration, load.RECOMMEND, headers=auth)
                )
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
    stacks.load_average("at end")
    print(f"\ntargets at {TARGET_RATE} req/s: miss p95 < 10 ms, hit p95 < 3 ms, "
          "hit rate > 95%, zero errors")  # fmt: skip


if __name__ == "__main__":
    main()
