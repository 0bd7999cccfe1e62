"""Benchmark: synthetic data generation speed and memory.

Cases (each run in a fresh child process so its peak RSS is its own):
- ``large``: ~1,000,000 events, 50,000 users, 20,000 leads, 90 days (target: < 60 s, < 2 GiB);
- ``default`` and ``smoke``: the presets;
- ``csv_baseline``: writing an events-shaped frame of the large case's size as CSV with pandas,
  the floor any generator that writes CSV has; the ratio large / baseline says how much the
  simulation itself costs on top.

Prints median and p95 wall time, events/s and peak RSS per case.
Usage: .venv/bin/python benchmarks/data_gen.py [--repeats N] [--large-repeats N]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

CASES = ("csv_baseline", "smoke", "default", "large")
LARGE = dict(users=50_000, leads=20_000, days=90, events=1_000_000)


def run_case(name: str, out: pathlib.Path) -> dict:
    """One measurement, in this process."""
    import pandas as pd

    from aiqleads import contracts as c
    from aiqleads.data import synth

    started = time.perf_counter()
    if name == "csv_baseline":
        n = LARGE["events"]
        rng = np.random.default_rng(0)
        frame = pd.DataFrame(
            {
                c.EVENT_ID: [f"e{i:08d}" for i in range(n)],
                c.USER_ID: [f"u{i:06d}" for i in rng.integers(0, LARGE["users"], n)],
                c.LEAD_ID: [f"l{i:06d}" for i in rng.integers(0, LARGE["leads"], n)],
                c.EVENT_TYPE: np.array(c.EVENT_TYPES, dtype=object)[rng.integers(0, 4, n)],
                c.TIMESTAMP: "2026-01-01T00:00:00Z",
                c.REQUEST_ID: "",
            }
        )
        started = time.perf_counter()  # the write alone
        out.mkdir(parents=True, exist_ok=True)
        frame.to_csv(out / c.EVENTS.file_name, index=False)
        events = n
    else:
        config = synth.SynthConfig(**LARGE, name="large") if name == "large" else synth.preset(name)
        events = synth.generate(config, out).rows["events"]
    seconds = time.perf_counter() - started
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"case": name, "seconds": seconds, "events": events, "peak_mib": peak_mib}


def measure(name: str, repeats: int) -> list[dict]:
    results = []
    for _ in range(repeats):
        out = pathlib.Path(tempfile.mkdtemp(prefix=f"aiq-bench-{name}-"))
        try:
            proc = subprocess.run(
                [sys.executable, __file__, "--child", name, "--out", str(out / "data")],
                capture_output=True,
                text=True,
                timeout=1_800,
                check=False,
            )
        finally:
            shutil.rmtree(out, ignore_errors=True)
        if proc.returncode != 0:
            raise SystemExit(f"case {name} failed:\n{proc.stderr}")
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(f"  {name}: {results[-1]['seconds']:.2f} s", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs of the small cases")
    parser.add_argument("--large-repeats", type=int, default=1, help="runs of the 1M-event case")
    parser.add_argument("--child", choices=CASES, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=pathlib.Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_case(args.child, args.out)))
        return
    if not 1 <= args.repeats <= 50 or not 1 <= args.large_repeats <= 10:
        parser.error("--repeats must be in [1, 50] and --large-repeats in [1, 10]")

    summary = {}
    for name in CASES:
        runs = measure(name, args.large_repeats if name == "large" else args.repeats)
        secs = np.array([r["seconds"] for r in runs])
        summary[name] = {
            "median_s": float(np.median(secs)),
            "p95_s": float(np.percentile(secs, 95)),
            "events": runs[0]["events"],
            "peak_mib": max(r["peak_mib"] for r in runs),
        }
    print()
    print(
        f"{'case':<13} {'median s':>9} {'p95 s':>8} {'events':>10} {'events/s':>10} {'peak MiB':>9}"
    )
    for name, s in summary.items():
        rate = s["events"] / s["median_s"]
        print(
            f"{name:<13} {s['median_s']:>9.2f} {s['p95_s']:>8.2f} {s['events']:>10,} {rate:>10,.0f} {s['peak_mib']:>9.0f}"
        )
    large, base = summary["large"], summary["csv_baseline"]
    print()
    print(
        f"large (1M events) vs CSV write alone: {large['median_s'] / base['median_s']:.1f}x the time"
    )
    verdict_t = "PASS" if large["median_s"] < 60 else "MISS"
    verdict_m = "PASS" if large["peak_mib"] < 2048 else "MISS"
    print(
        f"target < 60 s: {large['median_s']:.1f} s {verdict_t}; target < 2 GiB: {large['peak_mib']:.0f} MiB {verdict_m}"
    )


if __name__ == "__main__":
    main()
