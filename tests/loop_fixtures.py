"""Session fixtures of the closed-loop tests: one smoke world, one trained model, one stack.

Expensive, so built once per test session and shared by every test of the loop (event log,
monitoring, registry): a smoke synthetic data set whose last span is yesterday (so served
traffic lands on today's span, as in production), one `aiqleads pipeline run` on it to a
pushed model, and one `aiqleads serve` stack on that model. Tests that kill a child leave
the stack's supervisor to restart it and wait until it is healthy again before they end.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator

import pytest
import yaml

from serving import auth, stack_file
from serving.process import free_port, wait_until

BIN = pathlib.Path(sys.executable).parent
SMOKE_DAYS = 14
PIPELINE_TIMEOUT_SECONDS = 900
STACK_TIMEOUT_SECONDS = 240


def run_cli(
    *args: str, timeout: float = 600, env: dict | None = None
) -> subprocess.CompletedProcess:
    """``aiqleads ARGS`` as a user runs it; output captured, a failure shows it."""
    result = subprocess.run(
        [str(BIN / "aiqleads"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})},
    )
    if result.returncode != 0:
        pytest.fail(
            f"aiqleads {' '.join(args)} exited {result.returncode}\n"
            f"--- stdout\n{result.stdout[-4000:]}\n--- stderr\n{result.stderr[-4000:]}"
        )
    return result


@dataclasses.dataclass
class LoopWorld:
    data: pathlib.Path  # the data set the pipeline reads and ingestion writes to
    runs: pathlib.Path
    config: pathlib.Path  # pipeline config YAML
    model_base: pathlib.Path
    # The first `aiqleads pipeline run`, as its terminal showed it (None for a reused world).
    first_run: subprocess.CompletedProcess | None = None

    def versions(self) -> list[int]:
        if not self.model_base.is_dir():
            return []
        return sorted(int(p.name) for p in self.model_base.iterdir() if p.name.isdigit())


def write_pipeline_config(path: pathlib.Path, data: pathlib.Path, runs: pathlib.Path) -> None:
    """A smoke-sized pipeline config (the e2e pipeline tests use the same sizes)."""
    config = {
        "data_root": str(data),
        "runs_dir": str(runs),
        "serving_model_dir": str(runs / "serving_models" / "lead_recommender"),
        "example_gen": {"window_spans": SMOKE_DAYS, "eval_days": 2, "negatives_per_positive": 4},
        "trainer": {"train_steps": 300, "eval_steps": 50},
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))


REUSE_WORLD_ENV = "AIQLEADS_LOOP_WORLD"


def _reused_world(root: pathlib.Path, tmp: pathlib.Path) -> LoopWorld:
    """A copy of a world built earlier (``data/``, ``runs/``, ``pipeline.yaml`` as this
    fixture writes them, its paths rewritten to the copy): for iterating on one loop test
    without its pipeline run. The copy keeps the original as it was."""
    shutil.copytree(root / "data", tmp / "data")
    shutil.copytree(root / "runs", tmp / "runs")
    config = yaml.safe_load((root / "pipeline.yaml").read_text())
    for key in ("data_root", "runs_dir", "serving_model_dir"):
        config[key] = config[key].replace(str(root), str(tmp))
    (tmp / "pipeline.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    world = LoopWorld(
        tmp / "data", tmp / "runs", tmp / "pipeline.yaml", pathlib.Path(config["serving_model_dir"])
    )
    assert world.versions(), f"{REUSE_WORLD_ENV}={root} has no pushed model"
    return world


@pytest.fixture(scope="session")
def loop_world(tmp_path_factory) -> LoopWorld:
    """A smoke data set ending yesterday (UTC) and a model trained and pushed on it
    (or, with AIQLEADS_LOOP_WORLD=DIR, a copy of one built earlier)."""
    root = tmp_path_factory.mktemp("loop")
    if os.environ.get(REUSE_WORLD_ENV):
        return _reused_world(pathlib.Path(os.environ[REUSE_WORLD_ENV]), root)
    data, runs = root / "data", root / "runs"
    start = dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=SMOKE_DAYS)
    run_cli(
        "data", "synth", "--preset", "smoke", "--start-date", start.isoformat(), "--out", str(data)
    )
    config = root / "pipeline.yaml"
    write_pipeline_config(config, data, runs)
    world = LoopWorld(data, runs, config, runs / "serving_models" / "lead_recommender")
    # TensorFlow's C++ info lines on (the default), to show they reach the run's log only.
    world.first_run = run_cli(
        "pipeline", "run", "--config", str(config),
        timeout=PIPELINE_TIMEOUT_SECONDS, env={"TF_CPP_MIN_LOG_LEVEL": "0"},
    )  # fmt: skip
    assert world.versions(), "the smoke pipeline run pushed no model"
    return world


class _Lines:
    """Collects a stream's lines in a thread."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:
        for line in stream:
            self.lines.append(line.rstrip("\n"))


@dataclasses.dataclass
class ServedStack:
    """A running `aiqleads serve` and where it listens."""

    process: subprocess.Popen
    run_dir: pathlib.Path
    addresses: stack_file.StackAddresses
    output: _Lines

    @property
    def front(self) -> str:
        return self.addresses.front_url

    @property
    def auth_headers(self) -> dict[str, str]:
        """The development token `aiqleads serve` wrote for this stack."""
        return auth.bearer(auth.read_token(auth.dev_token_path(self.run_dir)))

    def pid_of(self, child: str) -> int:
        """The current PID of a child (``gateway-0``, ``event-store``...), from its lines."""
        pids = [
            int(m.group(1))
            for line in self.output.lines
            if (m := re.search(rf"\b{re.escape(child)} (?:ready|restarted) \(pid (\d+)", line))
        ]
        assert pids, f"no PID of {child} in the launcher's output"
        return pids[-1]

    def kill(self, child: str) -> int:
        pid = self.pid_of(child)
        os.kill(pid, signal.SIGKILL)
        return pid

    def wait_restarted(self, child: str, old_pid: int, timeout: float = 60) -> None:
        wait_until(lambda: self.pid_of(child) != old_pid, timeout, f"{child} restarted")

    def healthy(self) -> bool:
        body = json.dumps({"user_id": "u000001", "k": 1}).encode()
        headers = {"content-type": "application/json", **self.auth_headers}
        request = urllib.request.Request(f"{self.front}/v1/recommendations", body, headers)
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status == 200
        except OSError:
            return False


def write_serving_config(path: pathlib.Path, world: LoopWorld, feature_store: bool) -> None:
    """Serving settings of a loop stack: the monitoring stack watches closely (1-s scrapes
    and rule evaluations, served-feature drift over the last minute) and the retraining
    trigger trains on the loop world. The alerts keep their default holds, so the short
    traffic of most tests fires none; a test that wants alerts fast reloads the rules
    (tests/monitoring/test_retraining_e2e.py). The session's shared stack runs without the
    online feature store: its A/B tests compare a baseline and a model on equal terms (both
    from their snapshots); the store's own tests start a stack with it."""
    settings = {
        "monitor": {"drift_window_seconds": 60, "drift_interval_seconds": 3, "drift_min_rows": 200},
        "prometheus": {"scrape_interval_seconds": 1, "evaluation_interval_seconds": 1},
        "trigger": {"data_dir": str(world.data), "pipeline_config": str(world.config)},
        "feature_store": {"enabled": feature_store},
    }
    path.write_text(yaml.safe_dump(settings, sort_keys=False))


@contextlib.contextmanager
def serve(world: LoopWorld, root: pathlib.Path, feature_store: bool) -> Iterator[ServedStack]:
    """`aiqleads serve` on the loop world's model from ``root``, until the block ends."""
    run_dir = root / "run"
    config = root / "serving.yaml"
    write_serving_config(config, world, feature_store)
    argv = [
        str(BIN / "aiqleads"), "serve",
        "--config", str(config),
        "--model-base-path", str(world.model_base),
        "--run-dir", str(run_dir),
        "--port", str(free_port()),
    ]  # fmt: skip
    process = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    output = _Lines(process.stdout)
    try:
        wait_until(
            lambda: process.poll() is not None or (run_dir / stack_file.STACK_FILE).exists(),
            STACK_TIMEOUT_SECONDS,
            "aiqleads serve",
            interval=0.5,
        )
        assert process.poll() is None, "aiqleads serve exited:\n" + "\n".join(output.lines)
        stack = ServedStack(process, run_dir, stack_file.read(run_dir), output)
        wait_until(stack.healthy, 60, "the stack answering through Envoy")
        yield stack
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="session")
def served_stack(loop_world: LoopWorld, tmp_path_factory):
    """`aiqleads serve` on the loop world's model, for the whole session."""
    with serve(loop_world, tmp_path_factory.mktemp("stack"), feature_store=False) as stack:
        yield stack


@pytest.fixture(autouse=True)
def stack_token(request, monkeypatch):
    """$AIQLEADS_TOKEN set to the served stack's development token during the tests that
    use that stack (`aiqleads simulate`, `recommend`... they run take it from there), and
    only during those: other tests start stacks with keys of their own."""
    if "served_stack" in request.fixturenames:
        stack = request.getfixturevalue("served_stack")
        monkeypatch.setenv(auth.TOKEN_ENV, auth.read_token(auth.dev_token_path(stack.run_dir)))
    yield


def wait_healthy(stack: ServedStack, timeout: float = 90) -> float:
    """Seconds until the stack answers through Envoy again (after a test killed a child)."""
    return wait_until(stack.healthy, timeout, "the stack answering again")


# A label change reaches each model server within its file-system poll and each gateway within
# its version refresh (2 s each by default); until every replica has it, answers come from
# either version. Answers that held for this long come from every replica.
SETTLED_SECONDS = 10.0


def wait_settled(predicate, timeout: float, what: str, hold: float = SETTLED_SECONDS) -> float:
    """Seconds until ``predicate`` has held at every check (every 0.5 s) for ``hold`` s."""
    since: list[float] = []

    def held() -> bool:
        if not predicate():
            since.clear()
            return False
        since[:] = since or [time.monotonic()]
        return time.monotonic() - since[0] >= hold

    return wait_until(held, timeout, what, interval=0.5)


def first_examples(world: LoopWorld):
    """The world's pipeline config, MLMD store and its first run's ExampleGen output (the
    eval split and window that run trained and evaluated on)."""
    from components.example_gen import recorded
    from pipeline import registry, run_report
    from pipeline.config import load_config

    cfg = load_config(world.config)
    store = run_report.connect(cfg.metadata_path)
    examples = min(
        (
            a
            for a in registry.artifacts(store, "Examples")
            if recorded.WINDOW_LAST_PROPERTY in a.custom_properties
        ),
        key=lambda a: a.id,
    )
    return cfg, store, examples
