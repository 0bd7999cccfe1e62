"""What authentication at the front door costs: hit and miss p95 through Envoy at 200 req/s
with auth on (jwt_authn, RBAC, the per-client rate limit; a bearer token on every request)
against off, alternating fresh stacks in one run (medians over rounds).

    .venv/bin/python benchmarks/auth.py [--rate 200] [--duration 15] [--warmup 10] [--rounds 2]

The target: the filters cost under 0.5 ms at p95 (on minus off, hits and misses).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import pathlib
import statistics
import sys
import tempfile
import threading

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from serving.launcher import ServingStack, model_versions  # noqa: E402
from serving.process import free_port  # noqa: E402
from serving.settings import DEFAULT_MODEL_BASE_PATH, ServingSettings  # noqa: E402

RECOMMEND = "/v1/recommendations"
TARGET_MS = 0.5


def _load_serving_bench():
    """benchmarks/serving.py (its name would shadow the serving package as an import)."""
    spec = importlib.util.spec_from_file_location(
        "bench_serving", REPO / "benchmarks" / "serving.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_serving"] = module
    spec.loader.exec_module(module)
    return module


bench = _load_serving_bench()


def measure(
    settings: ServingSettings, auth_on: bool, args, trace: list[str]
) -> tuple[float, float]:
    """(hit p95, miss p95) of one step on a fresh stack."""
    stack = ServingStack(
        settings.with_overrides(
            **{"auth.enabled": auth_on, "run_dir": str(settings.run_dir / f"auth-{auth_on}")}
        ),
        progress=lambda _line: None,
    )
    stack.start()
    stop = threading.Event()
    threading.Thread(target=stack.supervise, args=(stop,), daemon=True).start()
    try:
        url = f"http://127.0.0.1:{stack.settings.envoy.port}"
        headers = stack.auth_headers()
        assert bool(headers) == auth_on
        n_warm = int(args.rate * args.warmup)
        bench._run(
            bench.run_load(url, trace[:n_warm], args.rate, args.warmup, RECOMMEND, headers=headers)
        )
        users = trace[n_warm : n_warm + int(args.rate * args.duration)]
        r = bench._run(
            bench.run_load(url, users, args.rate, args.duration, RECOMMEND, headers=headers)
        )
    finally:
        stop.set()
        stack.stop()
    hits = [ms for ms, c in zip(r.latency_ms, r.cached, strict=True) if c]
    misses = [ms for ms, c in zip(r.latency_ms, r.cached, strict=True) if not c]
    hit_p95, miss_p95 = bench.pct(hits, 95), bench.pct(misses, 95)
    print(
        f"  auth {'on ' if auth_on else 'off'}: hit p95 {hit_p95:6.2f} ms ({len(hits)}), miss p95 "
        f"{miss_p95:6.2f} ms ({len(misses)}), errors {r.n_errors}",
        flush=True,
    )
    return hit_p95, miss_p95


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=200.0, help="req/s")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds measured per step")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds before each step")
    parser.add_argument("--rounds", type=int, default=2, help="off/on pairs")
    parser.add_argument("--model-base-path", type=pathlib.Path, default=None)
    args = parser.parse_args()
    if not (1 <= args.duration <= 120 and 0 < args.rate <= 2000 and 1 <= args.rounds <= 10):
        parser.error("--duration 1..120 s, --rate 0..2000 req/s, --rounds 1..10")
    print("load average at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()), flush=True)
    with tempfile.TemporaryDirectory(prefix="aiqleads-bench-auth-") as tmp_name:
        tmp = pathlib.Path(tmp_name)
        base = args.model_base_path or DEFAULT_MODEL_BASE_PATH
        if not model_versions(base):
            print(f"no pushed model under {base}; using the tests' fixture SavedModel", flush=True)
            base = bench.fixture_model(tmp)
        settings = ServingSettings().with_overrides(
            **{
                "model_base_path": str(base),
                "run_dir": str(tmp / "run"),
                "envoy.port": free_port(),
                "monitoring": False,
                "envoy.rate_limit.requests_per_second": 100_000,
                "envoy.rate_limit.burst": 100_000,
                "auth.client_rate_limit.requests_per_second": 100_000,
                "auth.client_rate_limit.burst": 100_000,
            }
        )
        trace = bench.zipf_users(1000, 1.3, 200_000, seed=11)
        print(
            f"{args.rate:g} req/s, {args.warmup:g} s warm-up + {args.duration:g} s per step",
            flush=True,
        )
        results: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
        for round_ in range(args.rounds):
            print(f"round {round_ + 1}", flush=True)
            for auth_on in (False, True):
                results[auth_on].append(measure(settings, auth_on, args, trace))
    off_hit = statistics.median(r[0] for r in results[False])
    on_hit = statistics.median(r[0] for r in results[True])
    off_miss = statistics.median(r[1] for r in results[False])
    on_miss = statistics.median(r[1] for r in results[True])
    print(
        f"\nmedians over {args.rounds} rounds: hit p95 {off_hit:.2f} -> {on_hit:.2f} ms "
        f"({on_hit - off_hit:+.2f} ms), miss p95 {off_miss:.2f} -> {on_miss:.2f} ms "
        f"({on_miss - off_miss:+.2f} ms); target: auth adds < {TARGET_MS} ms at p95"
    )
    print("load average at the end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()), flush=True)


if __name__ == "__main__":
    main()
