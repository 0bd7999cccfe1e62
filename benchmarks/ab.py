"""Progressive delivery, measured: how soon a label change reaches the answers under load, and
how small a CTR change the A/B test detects for a number of simulated users.

    .venv/bin/python benchmarks/ab.py switch --run-dir RUN_DIR --to VERSION [--rate 200]
    .venv/bin/python benchmarks/ab.py sensitivity --run-dir RUN_DIR --data DATA [--duration 120]

``switch`` drives a running stack (``aiqleads serve``) through Envoy with an open-loop load of
``--rate`` requests per second, and in the middle makes ``--to`` the stable version
(``aiqleads models promote``), then rolls it back (``aiqleads models rollback``). For each
change it prints the time from the change being written to the last answer of the old
version (by send time) and the first of the new, failed requests, and the command's own
duration. A promote of a version the model servers have not loaded waits for the load (and
its warm-up); a rollback finds its target loaded (the deployment keeps it so). The same
change under light probing (``--baseline-rate``, 10/s) is the baseline measured in the same
run. Medians and p95 over ``--rounds``. With ``--reload VERSION`` (a third version, such as
the model before a retraining), each round also makes VERSION then the current stable the
stables before it, so that the rollback under load must also load VERSION (the stable
before the one restored, kept for a further rollback) on the same cores: a third row.

``sensitivity`` serves the stack's current stable version to both arms (an A/A test: the
canary label on the same version), runs the simulator (`aiqleads simulate`) for
``--duration`` seconds, and from the event log computes the information (1 / variance of the
log CTR ratio, user-clustered) that n users per arm give, for n up to what the run reached
(users drawn at random, 20 draws each). The minimum detectable relative CTR change at the
test's level and power follows (statsmodels' power calculation), next to the false-alarm
rate of the test itself on the A/A data as the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import math
import os
import pathlib
import statistics
import subprocess
import sys
import threading
import time

import numpy as np
import pandas as pd

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
BIN = pathlib.Path(sys.executable).parent
CONNECTIONS = 64
TIMEOUT_S = 5.0


@dataclasses.dataclass(frozen=True)
class Answer:
    sent: float  # time.time() of the send
    done: float
    status: int  # 0: no answer (connection error or timeout)
    version: int | None
    cached: bool


async def _read(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.lower().split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name == b"content-length":
            length = int(value)
    return status, await reader.readexactly(length)


async def drive(
    url: str, users: list[str], rate: float, stop: threading.Event, out: list[Answer]
) -> None:
    """Open loop: request i is due at start + i / rate until ``stop``; every outcome lands in
    ``out`` (keep-alive HTTP/1.1 connections over raw asyncio streams)."""
    host, _, port = url.removeprefix("http://").partition(":")
    queue: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()
    token = os.environ.get("AIQLEADS_TOKEN")  # the front door's bearer token (use_dev_token)
    auth_line = f"Authorization: Bearer {token}\r\n" if token else ""

    async def worker() -> None:
        reader = writer = None
        while (item := await queue.get()) is not None:
            i, due = item
            body = json.dumps({"user_id": users[i % len(users)], "k": 10}).encode()
            request = (
                f"POST /v1/recommendations HTTP/1.1\r\nHost: {host}\r\n"
                f"{auth_line}Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode() + body
            sent = time.time()
            try:
                if writer is None:
                    reader, writer = await asyncio.wait_for(
                        asyncio.open_connection(host, int(port)), TIMEOUT_S
                    )
                writer.write(request)
                status, payload = await asyncio.wait_for(_read(reader), TIMEOUT_S)
            except (OSError, ValueError, asyncio.TimeoutError, asyncio.IncompleteReadError):
                out.append(Answer(sent, time.time(), 0, None, False))
                if writer is not None:
                    writer.close()
                reader = writer = None
                continue
            version, cached = None, False
            if status == 200:
                data = json.loads(payload)
                version, cached = int(data["model_version"]), bool(data["cached"])
            out.append(Answer(sent, time.time(), status, version, cached))
        if writer is not None:
            writer.close()

    workers = [asyncio.create_task(worker()) for _ in range(CONNECTIONS)]
    start, i = time.perf_counter(), 0
    while not stop.is_set():
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait((i, due))
        i += 1
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)


def use_dev_token(run_dir: pathlib.Path) -> None:
    """Send the stack's development token (unless AIQLEADS_TOKEN already names one); the
    `aiqleads simulate` runs inherit it."""
    from serving import auth

    if not os.environ.get(auth.TOKEN_ENV):
        os.environ[auth.TOKEN_ENV] = auth.read_token(auth.dev_token_path(run_dir))


class Load:
    """`drive` in a thread of its own: ``with Load(...) as load: ...; load.answers``."""

    def __init__(self, url: str, users: list[str], rate: float) -> None:
        self.answers: list[Answer] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=lambda: asyncio.run(drive(url, users, rate, self._stop, self.answers)),
            daemon=True,
        )

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=TIMEOUT_S + 30)


def switch_seconds(answers: list[Answer], changed_at: float, old: int, new: int) -> dict:
    """From the change to the last answer of ``old`` sent after it, and to the first of
    ``new``; failed requests over the whole run."""
    after = [a for a in answers if a.sent >= changed_at and a.status == 200]
    last_old = max((a.sent for a in after if a.version == old), default=changed_at)
    first_new = min((a.sent for a in after if a.version == new), default=math.nan)
    failures = [a for a in answers if a.status != 200]
    return {
        "switch_s": last_old - changed_at,
        "first_new_s": first_new - changed_at,
        "failed": len(failures),
        # (status, seconds from the change to the send, seconds waited); status 0: no answer
        "failures": [
            (a.status, round(a.sent - changed_at, 3), round(a.done - a.sent, 3))
            for a in failures[:20]
        ],
        "answers": len(answers),
        "old_after_switch_cached": sum(
            1 for a in after if a.version == old and a.cached and a.sent > last_old
        ),
    }


def deployment_of(run_dir: pathlib.Path):
    """The deployment (labels, history) of the stack in ``run_dir``."""
    from serving.deployment import DEPLOYMENT_DIR, Deployment
    from serving.settings import MODEL_NAME

    return Deployment(run_dir / DEPLOYMENT_DIR, MODEL_NAME)


def models_cli(run_dir: pathlib.Path, *args: str) -> float:
    """Run ``aiqleads models ARGS``; the time the change was written (its history line)."""
    done = subprocess.run(
        [str(BIN / "aiqleads"), "models", *args, "--run-dir", str(run_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:  # the command's own one-line error, e.g. an unknown version
        raise SystemExit(f"aiqleads models {args[0]}: {(done.stderr or done.stdout).strip()}")
    return deployment_of(run_dir).history()[-1].time


def one_switch(
    run_dir: pathlib.Path, url: str, users: list[str], rate: float, to: int, settle: float
) -> list[dict]:
    """Promote ``to`` to stable under load, then roll it back; both switches measured."""
    old = deployment_of(run_dir).state().stable
    assert old is not None and old != to
    out = []
    with Load(url, users, rate) as load:
        time.sleep(settle)
        started = time.time()
        changed = models_cli(
            run_dir, "promote", str(to), "--label", "stable", "--force", "--reason", "benchmark"
        )
        command = time.time() - started
        time.sleep(settle + 5)
        started = time.time()
        back = models_cli(run_dir, "rollback", "--reason", "benchmark")
        command_back = time.time() - started
        time.sleep(settle + 5)
    first = switch_seconds(load.answers, changed, old, to)
    out.append({**first, "kind": "promote", "command_s": command})
    out.append(
        {
            **switch_seconds(load.answers, back, to, old),
            "kind": "rollback",
            "command_s": command_back,
        }
    )
    return out


def reload_rollback(
    run_dir: pathlib.Path, url: str, users: list[str], rate: float, to: int, reload: int
) -> list[dict]:
    """Stables ``reload``, then the current one, then ``to`` under load and a rollback: the
    rollback's row, whose change also loads ``reload`` (unloaded by the promote of ``to``)."""
    current = deployment_of(run_dir).state().stable
    for version in (reload, current):  # each waits for its load, if any
        models_cli(
            run_dir,
            "promote",
            str(version),
            "--label",
            "stable",
            "--force",
            "--reason",
            "benchmark",
        )
    time.sleep(5.0)
    return [r for r in one_switch(run_dir, url, users, rate, to, 5.0) if r["kind"] == "rollback"]


def load_average() -> str:
    return " ".join(pathlib.Path("/proc/loadavg").read_text().split()[:3])


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else math.nan


def switch(args: argparse.Namespace) -> None:
    from serving import stack_file

    run_dir = pathlib.Path(args.run_dir)
    if args.reload is not None:
        stable = deployment_of(run_dir).state().stable
        if stable is None or len({stable, args.to, args.reload}) != 3:
            raise SystemExit(
                f"--reload {args.reload} must differ from --to {args.to} and from the "
                f"stable ({stable})"
            )
    use_dev_token(run_dir)
    url = stack_file.read(run_dir).front_url
    users = [f"u{i:06d}" for i in range(1, args.users + 1)]
    print(f"load average at start: {load_average()}")
    rows: dict[str, list[dict]] = {"baseline": [], "load": []}
    if args.reload is not None:
        rows["reload"] = []
    for _ in range(args.rounds):
        rows["baseline"] += one_switch(run_dir, url, users, args.baseline_rate, args.to, 3.0)
        rows["load"] += one_switch(run_dir, url, users, args.rate, args.to, 5.0)
        if args.reload is not None:
            rows["reload"] += reload_rollback(run_dir, url, users, args.rate, args.to, args.reload)
    for kind in ("promote", "rollback"):
        for name, all_rows in rows.items():
            values = [r for r in all_rows if r["kind"] == kind]
            if not values:
                continue
            sw = [r["switch_s"] for r in values]
            rate = args.baseline_rate if name == "baseline" else args.rate
            print(
                f"{kind:<8} {name:<8} {rate:>5.0f} req/s  switch median "
                f"{statistics.median(sw):.2f} s  p95 {pct(sw, 95):.2f} s  max {max(sw):.2f} s  "
                f"first new answer median "
                f"{statistics.median(r['first_new_s'] for r in values):.2f} s  failed "
                f"{sum(r['failed'] for r in values)} of {sum(r['answers'] for r in values)}  "
                f"command median {statistics.median(r['command_s'] for r in values):.2f} s"
            )
        base = statistics.median(r["switch_s"] for r in rows["baseline"] if r["kind"] == kind)
        under = statistics.median(r["switch_s"] for r in rows["load"] if r["kind"] == kind)
        print(f"{kind}: switch under load / baseline {under / base if base else math.nan:.2f}x")
    if "reload" in rows:
        base = statistics.median(r["switch_s"] for r in rows["baseline"] if r["kind"] == "rollback")
        under = statistics.median(r["switch_s"] for r in rows["reload"])
        print(
            f"rollback that also loads {args.reload}: switch / baseline "
            f"{under / base if base else math.nan:.2f}x; its failed requests (status, s after "
            f"the change, s waited): {[f for r in rows['reload'] for f in r['failures']]}"
        )
    print(f"load average at end: {load_average()}")
    print(json.dumps(rows))


def sensitivity(args: argparse.Namespace) -> None:
    from monitoring import ab
    from monitoring.rollout import read_events
    from serving import stack_file

    run_dir = pathlib.Path(args.run_dir)
    use_dev_token(run_dir)
    stack = stack_file.read(run_dir)
    deployment = deployment_of(run_dir)
    state = deployment.state()
    assert state.stable is not None and state.canary is None, "needs a stack without a canary"
    # A/A: the canary label on a second copy of the stable version is not possible (one
    # label, one version), so both arms are the stable label: users are split by the same
    # hash as the gateways', over stable answers only.
    print(f"load average at start: {load_average()}")
    start = time.time()
    subprocess.run(
        [
            str(BIN / "aiqleads"), "simulate", "--data", str(args.data), "--url",
            stack.front_url, "--duration", str(args.duration), "--rate", str(args.rate),
            "--seed", "5", "--json",
        ],
        check=True, capture_output=True, text=True, timeout=args.duration + 300,
    )  # fmt: skip
    impressions, feedback = read_events(stack.event_store_url, start)
    from serving.gateway.variants import assign_variant

    design = ab.Design()
    relabelled_imps = [
        dataclasses.replace(i, variant=assign_variant(i.user_id, 0.5), model_version=1)
        for i in impressions
        if i.model_version == state.stable
    ]
    relabelled_fb = [
        dataclasses.replace(f, variant=assign_variant(f.user_id, 0.5), model_version=1)
        for f in feedback
    ]
    data = ab.ExperimentData.collect(
        relabelled_imps,
        relabelled_fb,
        ab.Experiment(1, 1, start, 0.5),
        design.window_seconds,
    )
    counts = data.counts()
    users = {arm: counts[counts["arm"] == arm] for arm in ab.ARMS}
    most = min(len(users[arm]) for arm in ab.ARMS)
    rng = np.random.default_rng(0)
    ctr = counts["clicks"].sum() / counts["impressions"].sum()
    per_user = counts["impressions"].sum() / len(counts)
    print(
        f"A/A over {len(counts)} users, {int(counts['impressions'].sum())} impressions "
        f"({per_user:.1f} per user), CTR {ctr:.3f}; test at alpha {design.alpha} over "
        f"{design.looks} looks, power {design.power}"
    )
    false_alarms = []
    print(f"{'users/arm':>9} {'information':>12} {'MDE (median of 20 draws)':>25}")
    for n in [m for m in (25, 50, 75, 100, 150, 200, 300, 500, 1000) if m <= most]:
        infos, alarms = [], 0
        for _ in range(20):
            sample = [
                users[arm].iloc[rng.choice(len(users[arm]), n, replace=False)] for arm in ab.ARMS
            ]
            both = pd.concat(sample)
            infos.append(ab.information(both))
            test = ab.compare(both, "clicks", design.alpha / design.looks)
            alarms += test.p_value < design.alpha / design.looks
        info = statistics.median(infos)
        mde = ab.minimum_detectable_lift(info, design)
        false_alarms.append(alarms / 20)
        print(f"{n:>9} {info:>12.1f} {mde:>24.1%}")
    print(
        f"baseline, the test on A/A draws: false alarms in {statistics.mean(false_alarms):.1%} "
        f"of them (its level per look: {design.alpha / design.looks:.1%})"
    )
    print(f"load average at end: {load_average()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("switch", help="label change to answers, under load")
    s.add_argument("--run-dir", required=True)
    s.add_argument("--to", type=int, required=True, help="version to promote, then roll back")
    s.add_argument("--rate", type=float, default=200.0)
    s.add_argument("--baseline-rate", type=float, default=10.0)
    s.add_argument("--rounds", type=int, default=3)
    s.add_argument("--users", type=int, default=300, help="distinct users in the load")
    s.add_argument(
        "--reload",
        type=int,
        help="a third version: also measure a rollback that must load it (see above)",
    )
    t = sub.add_parser("sensitivity", help="minimum detectable CTR lift vs users per arm")
    t.add_argument("--run-dir", required=True)
    t.add_argument("--data", required=True, help="the synthetic data set the stack serves")
    t.add_argument("--duration", type=float, default=120.0)
    t.add_argument("--rate", type=float, default=20.0)
    args = parser.parse_args()
    from aiqleads.errors import AiqleadsError

    try:
        {"switch": switch, "sensitivity": sensitivity}[args.command](args)
    except AiqleadsError as e:  # no stack, a bad deployment folder...: one line, exit 2
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
