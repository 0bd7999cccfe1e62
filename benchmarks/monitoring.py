"""Monitoring benchmark: what Prometheus, Alertmanager and the trigger cost the serving path.

Starts the local stack without monitoring (`--no-monitoring`'s settings: the baseline) and
with it, one after the other, ``--rounds`` times each (off, on, off, on...), and drives each
with the same open-loop Zipf trace through Envoy (`benchmarks/harness/load.py`):
after ``--warmup`` seconds, ``--duration`` seconds at ``--rate`` req/s, hit and miss
latency from the scheduled send. Prints each step, then the medians over the rounds of the
hit and miss p95 with and without monitoring and their ratios. With monitoring, Prometheus
scrapes every ``--scrape-interval`` seconds and evaluates the rules as often.

The drift-to-alert and drift-to-new-version times come from the end-to-end test of the
closed loop (tests/monitoring/test_retraining_e2e.py, run with ``-s``), which prints them.

    .venv/bin/python benchmarks/monitoring.py [--rate 200] [--duration 15] [--rounds 2]
"""

from __future__ import annotations

import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.harness import load, stacks  # noqa: E402
from monitoring import stack_configs  # noqa: E402
from serving.launcher import ServingStack  # noqa: E402
from serving.settings import ServingSettings  # noqa: E402


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
    with stacks.supervised(stack):
        r = stacks.warm_then_measure(stack, trace, args)
    hits, misses = r.hits_and_misses()
    hit_p95, miss_p95 = load.pct(hits, 95), load.pct(misses, 95)
    rate = len(hits) / max(len(r.latency_ms), 1)
    label = "on " if monitoring else "off"
    print(
        f"  monitoring {label}: hit p95 {hit_p95:6.2f} ms ({len(hits)}), miss p95 "
        f"{miss_p95:6.2f} ms ({len(misses)}), hit rate {rate:.1%}, errors {r.n_errors}",
        flush=True,
    )
    return hit_p95, miss_p95, rate


def main() -> None:
    parser = stacks.on_off_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--scrape-interval", type=float, default=15.0, help="seconds")
    args = stacks.parse_on_off(parser)
    stacks.load_average("at start")
    overrides = {
        "prometheus.scrape_interval_seconds": args.scrape_interval,
        "prometheus.evaluation_interval_seconds": args.scrape_interval,
    }
    plan = (
        f"{args.rate:g} req/s, {args.warmup:g} s warm-up + {args.duration:g} s per step, "
        f"scrapes every {args.scrape_interval:g} s; latency in ms from the scheduled send"
    )
    off, on = stacks.compare(
        args,
        "aiqleads-bench-monitoring-",
        overrides,
        plan,
        lambda settings, with_it, trace: measure(settings, with_it, args, trace),
    )
    (off_hit, off_miss, _), (on_hit, on_miss, _) = off, on
    print(
        f"\nmedian over {args.rounds} rounds: hit p95 {off_hit:.2f} -> {on_hit:.2f} ms "
        f"({on_hit / off_hit:.2f}x), miss p95 {off_miss:.2f} -> {on_miss:.2f} ms "
        f"({on_miss / off_miss:.2f}x) without -> with monitoring"
    )
    stacks.load_average("at the end")


if __name__ == "__main__":
    main()
