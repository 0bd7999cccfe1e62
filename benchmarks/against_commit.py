"""One benchmark, the working tree's code against an older commit's, in one run.

The older commit is extracted (`git archive`) into a temporary folder; each round runs the
benchmark script of each tree in turn (the order alternating between rounds), with that tree
first on PYTHONPATH, so the processes it starts (gateways, model servers) run that tree's
code on the same virtual environment. The scripts print a table of cases with p50, p95 and
p99 (`benchmarks/gateway.py`, `benchmarks/model_server.py`); this prints each case's medians
over the rounds, side by side, and the ratio of the working tree's to the commit's.

    .venv/bin/python benchmarks/against_commit.py --base e15a13b [--rounds 3] \
        benchmarks/gateway.py [--requests 2000 ...]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile

REPO = pathlib.Path(__file__).resolve().parents[1]
# "<case>  <p50> <p95> <p99> <req/s> <ratio>": a row of the scripts' final table.
ROW = re.compile(r"^(?P<case>\S.*?)\s+(?P<p50>\d+\.\d+)\s+(?P<p95>\d+\.\d+)\s+(?P<p99>\d+\.\d+)\s")


def extract(commit: str, into: pathlib.Path) -> pathlib.Path:
    archive = into / "base.tar"
    with archive.open("wb") as out:
        subprocess.run(["git", "-C", str(REPO), "archive", commit], stdout=out, check=True)
    tree = into / "base"
    with tarfile.open(archive) as tar:
        tar.extractall(tree, filter="data")
    return tree


def run(tree: pathlib.Path, script: str, args: list[str]) -> dict[str, tuple[float, float]]:
    """{case: (p50, p95)} of one run of ``script`` from ``tree``."""
    env = {**os.environ, "PYTHONPATH": str(tree), "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(
        [sys.executable, str(tree / script), *args],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if result.returncode != 0:
        raise SystemExit(f"{script} in {tree} exited {result.returncode}:\n{result.stderr[-3000:]}")
    rows = {}
    for line in result.stdout.splitlines():
        if (m := ROW.match(line)) and not line.startswith("case"):
            rows[m["case"].strip()] = (float(m["p50"]), float(m["p95"]))
    if not rows:
        raise SystemExit(f"no result table in the output of {script}:\n{result.stdout[-2000:]}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="the older commit")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("script", help="a benchmark that prints a p50/p95/p99 table")
    parser.add_argument("script_args", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    if not 1 <= args.rounds <= 10:
        parser.error("--rounds 1..10")
    if not (REPO / args.script).is_file():
        parser.error(f"{args.script}: no such script in {REPO}")
    print("load average at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()), flush=True)
    with tempfile.TemporaryDirectory(prefix="aiqleads-bench-against-") as tmp:
        base = extract(args.base, pathlib.Path(tmp))
        trees = {"base": base, "head": REPO}
        runs: dict[str, list[dict[str, tuple[float, float]]]] = {"base": [], "head": []}
        for round_ in range(args.rounds):
            order = ("base", "head") if round_ % 2 == 0 else ("head", "base")
            for name in order:
                print(f"round {round_ + 1}: {name} ...", flush=True)
                runs[name].append(run(trees[name], args.script, args.script_args))
    cases = [c for c in runs["head"][0] if all(c in r for r in runs["base"] + runs["head"])]
    print(
        f"\nmedians over {args.rounds} rounds, {args.script} at {args.base} (base) and the "
        "working tree (head)"
    )
    print(f"{'case':34s} {'p50 base':>9s} {'p50 head':>9s} {'ratio':>6s} "
          f"{'p95 base':>9s} {'p95 head':>9s} {'ratio':>6s}")  # fmt: skip
    for case in cases:
        b50, b95 = (statistics.median(r[case][i] for r in runs["base"]) for i in (0, 1))
        h50, h95 = (statistics.median(r[case][i] for r in runs["head"]) for i in (0, 1))
        print(
            f"{case:34s} {b50:9.2f} {h50:9.2f} {h50 / b50:6.2f} {b95:9.2f} {h95:9.2f} "
            f"{h95 / b95:6.2f}"
        )
    print("load average at the end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
