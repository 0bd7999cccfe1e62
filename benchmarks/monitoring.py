"""Monitoring benchmark: what Prometheus, Alertmanager and the trigger cost the serving path.

Starts the local stack without monitoring (`--no-monitoring`'s settings: the baseline) and
with it, one after the other, ``--rounds`` times each (off, on, off, on...), and drives each
with the same open-loop Zipf trace through Envoy (`benchmarks/serving.py`'s load generator):
after ``--warmup`` seconds, ``--duration`` seconds at ``--rate`` req/s, hit and miss
latency from the scheduled send. Prints each step, then the medians over the rounds of the
hit and miss p95 with and without monitoring and their ratios. With monitoring, Prometheus
scrapes every ``--scrape-interval`` seconds and evaluates the rules as often.

The drift-to-alert and drift-to-new-version times come from the end-to-end test of the
closed loop (tests/monitoring/test_retraining_e2e.py, run with ``-s``), which prints them.

    .venv/bin/python benchmarks/monitoring.py [--rate 200] [--duration 15] [--rounds 2]
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

from monitoring import stack_configs  # noqa: E402
from serving.launcher import ServingStack, model_versions  # noqa: E402
from serving.process import free_port  # noqa: E402
from serving.settings import DEFAULT_MODEL_BASE_PATH, ServingSettings  # noqa: E402


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
RECOMMEND = "/v1/recommendations"


def measure(
    settings: ServingSettings, monitoring: bool, args, trace: list[str]
) -> tuple[float, float, float]:
    """(hit p95, miss p95, hit rate) of one step on a fresh stack."""
    stack = ServingStack(
        settings.with_overrides(
            monitoring=monitoring, run_dir=str(settings.run_dir / f"{monitoring}")
        ),
        progress=lambda _line: None,
        monitoring=stack_configs.write,
    )
    stack.start()
    stop = threading.Event()
    threading.Thread(target=stack.supervise, args=(stop,), daemon=True).start()
    try:
        url = f"http://127.0.0.1:{stack.settings.envoy.port}"
        n_warm = int(args.rate * args.warmup)
        bench._run(
            bench.run_load(
                url, trace[:n_warm], args.rate, args.warmup, RECOMMEND, headers=stack.auth_headers()
            )
        )
        users = trace[n_warm : n_warm + int(args.rate * args.duration)]
        r = bench._run(
            bench.run_load(
                url, users, args.rate, args.duration, RECOMMEND, headers=stack.auth_headers()
            )
        )
    finally:
        stop.set()
        stack.stop()
    hits = [ms for ms, c in zip(r.latency_ms, r.cached, strict=True) if c]
    misses = [ms for ms, c in zip(r.latency_ms, r.cached, strict=True) if not c]
    hit_p95, miss_p95 = bench.pct(hits, 95), bench.pct(misses, 95)
    rate = len(hits) / max(len(r.latency_ms), 1)
    label = "on " if monitoring else "off"
    print(
        f"  monitoring {label}: hit p95 {hit_p95:6.2f} ms ({len(hits)}), miss p95 "
        f"{miss_p95:6.2f} ms ({len(misses)}), hit rate {rate:.1%}, errors {r.n_errors}",
        flush=True,
    )
    return hit_p95, miss_p95, rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=200.0, help="req/s")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds measured per step")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds before each step")
    parser.add_argument("--rounds", type=int, default=2, help="off/on pairs")
    parser.add_argument("--scrape-interval", type=float, default=15.0, help="seconds")
    parser.add_argument("--model-base-path", type=pathlib.Path, default=None)
    args = parser.parse_args()
    if not (1 <= args.duration <= 120 and 0 < args.rate <= 2000 and 1 <= args.rounds <= 10):
        parser.error("--duration 1..120 s, --rate 0..2000 req/s, --rounds 1..10")
    print("load average at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()), flush=True)
    with tempfile.TemporaryDirectory(prefix="aiqleads-bench-monitoring-") as tmp_name:
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
                "envoy.rate_limit.requests_per_second": 100_000,
                "envoy.rate_limit.burst": 100_000,
                "prometheus.scrape_interval_seconds": args.scrape_interval,
                "prometheus.evaluation_interval_seconds": args.scrape_interval,
            }
        )
        trace = bench.zipf_users(1000, 1.3, 200_000, seed=11)
        print(
            f"{args.rate:g} req/s, {args.warmup:g} s warm-up + {args.duration:g} s per step, "
            f"scrapes every {args.scrape_interval:g} s; latency in ms from the scheduled send",
            flush=True,
        )
        results: dict[bool, list[tuple[float, float, float]]] = {False: [], True: []}
        for round_ in range(args.rounds):
            print(f"round {round_ + 1}", flush=True)
            for monitoring in (False, True):
                results[monitoring].append(measure(settings, monitoring, args, trace))
    off_hit = statistics.median(r[0] for r in results[False])
    on_hit = statistics.median(r[0] for r in results[True])
    off_miss = statistics.median(r[1] for r in results[False])
    on_miss = statistics.median(r[1] for r in results[True])
    print(
        f"\nmedian over {args.rounds} rounds: hit p95 {off_hit:.2f} -> {on_hit:.2f} ms "
        f"({on_hit / off_hit:.2f}x), miss p95 {off_miss:.2f} -> {on_miss:.2f} ms "
        f"({on_miss / off_miss:.2f}x) without -> with monitoring"
    )
    print("load average at the end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
