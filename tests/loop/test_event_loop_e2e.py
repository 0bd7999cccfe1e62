"""The closed loop end to end, as a user runs it: `aiqleads serve`, `aiqleads simulate`,
`aiqleads events ingest`, `aiqleads data validate`, `aiqleads pipeline run`.

The shared session stack (`tests/loop_fixtures.py`) serves a model trained on a smoke world
whose last span is yesterday; simulated users of that world ask for leads and react, while
the test kills a gateway and the event store. Everything the API acknowledged must come out
of ingestion exactly once, pass the contracts, and train the next model.
"""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
import sys
import time

import pandas as pd
import pytest
from loop_fixtures import run_cli, wait_healthy  # loaded by tests/conftest.py

from aiqleads import contracts, layout

pytestmark = pytest.mark.e2e

BIN = pathlib.Path(sys.executable).parent
SIMULATED_SECONDS = 60
RATE = 12  # requests/s: about 1,000 feedback over the run, on a loaded 2-core machine


def _simulate(stack, world, seconds: float, ack_log: pathlib.Path, *extra: str) -> subprocess.Popen:
    argv = [
        str(BIN / "aiqleads"), "simulate",
        "--data", str(world.data), "--url", stack.front,
        "--duration", str(seconds), "--rate", str(RATE), "--seed", "11",
        "--ack-log", str(ack_log), "--json", *extra,
    ]  # fmt: skip
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _span_rows(data: pathlib.Path) -> pd.DataFrame:
    frames = [
        pd.read_csv(
            layout.table_path(data, contracts.EVENTS, day), dtype=str, keep_default_na=False
        )
        for day in layout.list_spans(data)
    ]
    return pd.concat(frames, ignore_index=True)


def test_acknowledged_feedback_survives_crashes_and_trains_the_next_model(
    loop_world, served_stack, tmp_path
):
    acks = tmp_path / "acks.txt"
    sim = _simulate(served_stack, loop_world, SIMULATED_SECONDS, acks)
    time.sleep(SIMULATED_SECONDS * 0.3)
    old = served_stack.kill("gateway-0")  # kill -9 in the middle of the traffic
    served_stack.wait_restarted("gateway-0", old)
    time.sleep(SIMULATED_SECONDS * 0.2)
    old = served_stack.kill("event-store")  # the log's own store crashes and restarts
    served_stack.wait_restarted("event-store", old)
    out, err = sim.communicate(timeout=SIMULATED_SECONDS + 180)
    assert sim.returncode == 0, err[-3000:]
    summary = json.loads(out)
    acked = acks.read_text().split()
    assert summary["feedback_accepted"] == len(acked) > 300, summary
    wait_healthy(served_stack)

    ingest = run_cli(
        "events", "ingest", "--data", str(loop_world.data), "--run-dir", str(served_stack.run_dir)
    )
    assert "quarantined" in ingest.stdout

    rows = _span_rows(loop_world.data)
    served = rows[rows[contracts.EVENT_ID].isin(set(acked))]
    # Every acknowledged feedback is in exactly one span row, nothing twice, nothing missing.
    assert not rows[contracts.EVENT_ID].duplicated().any()
    assert set(served[contracts.EVENT_ID]) == set(acked)
    assert len(served) == len(set(acked))
    counts = served[contracts.EVENT_TYPE].value_counts().to_dict()
    assert counts == {k: v for k, v in summary["events"].items() if v}
    run_cli("data", "validate", str(loop_world.data))

    # The next pipeline run trains on generated data plus the served traffic, and pushes.
    before = loop_world.versions()
    run = run_cli("pipeline", "run", "--config", str(loop_world.config), timeout=1200)
    after = loop_world.versions()
    assert len(after) == len(before) + 1, run.stdout[-3000:]
    assert "drift check: passed" in run.stdout
    assert "serving records 0" not in run.stdout  # the skew check read the served traffic


def test_a_skew_injected_by_the_client_stops_the_pipeline(loop_world, served_stack, tmp_path):
    """The simulator's client sends one default location with every request: the skew check, reading
    the real serving logs through ingestion, stops the run before training."""
    data = tmp_path / "data"
    shutil.copytree(loop_world.data, data)
    for old_rows in (data / layout.SERVING_LOGS_DIR).glob("*.jsonl"):
        old_rows.unlink()  # only this test's traffic in the logs the check reads
    sim = _simulate(
        served_stack, loop_world, 25, tmp_path / "acks.txt", "--scenario", "skew-location"
    )
    out, err = sim.communicate(timeout=200)
    assert sim.returncode == 0, err[-3000:]
    run_cli("events", "ingest", "--data", str(data), "--run-dir", str(served_stack.run_dir))
    config = tmp_path / "pipeline.yaml"
    loop_fixtures_config = loop_world.config.read_text().replace(str(loop_world.data), str(data))
    config.write_text(loop_fixtures_config.replace(str(loop_world.runs), str(tmp_path / "runs")))
    result = subprocess.run(
        [
            str(BIN / "aiqleads"),
            "pipeline",
            "run",
            "--config",
            str(config),
            "--stage",
            "drift_check",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode != 0
    assert "skew on user_latitude" in result.stdout + result.stderr
