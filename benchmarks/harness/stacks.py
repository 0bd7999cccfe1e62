"""A local serving stack for a benchmark, and the on/off comparisons built on it.

What the stack serves (`model_base`: the pushed model, else the tests' fixture SavedModel),
its settings for a load test (`settings`), and the stack running with its supervisor
(`supervised`). An on/off comparison (`benchmarks/auth.py`, `benchmarks/monitoring.py`)
starts a fresh stack with a feature off, then one with it on, ``--rounds`` times; each is
warmed up then measured with the same open-loop Zipf trace through Envoy (`warm_then_measure`),
and `compare` gives each figure's median over the rounds.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pathlib
import statistics
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from typing import Any

from benchmarks.harness import load
from serving.launcher import ServingStack, model_versions
from serving.process import free_port
from serving.settings import DEFAULT_MODEL_BASE_PATH, ServingSettings

REPO = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
FIXTURE_MODEL_NAME = "lead_recommender"
UNLIMITED = 100_000  # a rate limit (req/s, burst) no benchmark's offered load comes near
# A load test's stack: no monitoring stack beside it, no per-client limit in the load's way.
LOAD_TEST = {
    "monitoring": False,
    "auth.client_rate_limit.requests_per_second": UNLIMITED,
    "auth.client_rate_limit.burst": UNLIMITED,
}


def load_average(when: str) -> None:
    """Print the machine's load average: other work shows up in every figure."""
    print(f"load average {when}: " + "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg()), flush=True)


def fixture_model(tmp: pathlib.Path) -> pathlib.Path:
    """The tests' tiny real SavedModel (version 1) under ``tmp``; its base path."""
    sys.path.insert(0, str(FIXTURES))
    from recommend_model import build_recommend_model

    base = tmp / FIXTURE_MODEL_NAME
    build_recommend_model(base, version=1)
    return base


def model_base(path: pathlib.Path | None, tmp: pathlib.Path) -> pathlib.Path:
    """``path`` (default: where the pipeline pushes) when it holds a version, else the
    tests' fixture SavedModel built under ``tmp``."""
    base = path or DEFAULT_MODEL_BASE_PATH
    if not model_versions(base):
        print(f"no pushed model under {base}; using the tests' fixture SavedModel", flush=True)
        base = fixture_model(tmp)
    return base


def settings(base: pathlib.Path, run_dir: pathlib.Path, **overrides: Any) -> ServingSettings:
    """The default settings serving ``base`` from ``run_dir``, Envoy on a free port with its
    global rate limit out of the load's way, then ``overrides`` (dotted keys)."""
    return ServingSettings().with_overrides(
        **{
            "model_base_path": str(base),
            "run_dir": str(run_dir),
            "envoy.port": free_port(),
            "envoy.rate_limit.requests_per_second": UNLIMITED,
            "envoy.rate_limit.burst": UNLIMITED,
            **overrides,
        }
    )


@contextlib.contextmanager
def supervised(stack: ServingStack) -> Iterator[ServingStack]:
    """``stack`` started, its supervisor restarting children in a thread; stopped after."""
    stack.start()
    stop = threading.Event()
    supervisor = threading.Thread(target=stack.supervise, args=(stop,), daemon=True)
    supervisor.start()
    try:
        yield stack
    finally:
        stop.set()
        supervisor.join()
        stack.stop()


def front_url(stack: ServingStack) -> str:
    return f"http://127.0.0.1:{stack.settings.envoy.port}"


# -- on/off comparisons -----------------------------------------------------------------
def on_off_parser(description: str) -> argparse.ArgumentParser:
    """The options every on/off comparison takes; a script adds its own."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--rate", type=float, default=200.0, help="req/s")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds measured per step")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds before each step")
    parser.add_argument("--rounds", type=int, default=2, help="off/on pairs")
    parser.add_argument("--model-base-path", type=pathlib.Path, default=None)
    return parser


def parse_on_off(parser: argparse.ArgumentParser) -> argparse.Namespace:
    args = parser.parse_args()
    if not (1 <= args.duration <= 120 and 0 < args.rate <= 2000 and 1 <= args.rounds <= 10):
        parser.error("--duration 1..120 s, --rate 0..2000 req/s, --rounds 1..10")
    return args


def warm_then_measure(
    stack: ServingStack, trace: list[str], args: argparse.Namespace
) -> load.Result:
    """``args.warmup`` seconds of ``trace`` at ``args.rate`` through Envoy with the stack's
    token (not measured), then the trace's next ``args.duration`` seconds: the step's
    outcomes."""
    url, headers = front_url(stack), stack.auth_headers()
    n_warm = int(args.rate * args.warmup)
    warm = trace[:n_warm]
    load.run_step(load.run_load(url, warm, args.rate, args.warmup, load.RECOMMEND, headers=headers))
    users = trace[n_warm : n_warm + int(args.rate * args.duration)]
    return load.run_step(
        load.run_load(url, users, args.rate, args.duration, load.RECOMMEND, headers=headers)
    )


def compare(
    args: argparse.Namespace,
    prefix: str,
    overrides: dict[str, Any],
    plan: str,
    step: Callable[[ServingSettings, bool, list[str]], tuple[float, ...]],
) -> tuple[list[float], list[float]]:
    """An on/off comparison in a temporary folder (``prefix``): settings serving
    ``--model-base-path`` (else the fixture model) with ``overrides``, a Zipf trace (1,000
    users, exponent 1.3) and ``plan`` printed, then ``step(settings, on, trace)`` off and on,
    ``args.rounds`` times: each figure of a step's tuple as its median over the rounds, off
    and on."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp_name:
        tmp = pathlib.Path(tmp_name)
        base = settings(model_base(args.model_base_path, tmp), tmp / "run", **overrides)
        trace = load.zipf_users(1000, 1.3, 200_000, seed=11)
        print(plan, flush=True)
        results: dict[bool, list[tuple[float, ...]]] = {False: [], True: []}
        for round_ in range(args.rounds):
            print(f"round {round_ + 1}", flush=True)
            for on in (False, True):
                results[on].append(step(base, on, trace))
    off, on = ([statistics.median(f) for f in zip(*results[k], strict=True)] for k in (False, True))
    return off, on
