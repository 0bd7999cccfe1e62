"""The loop's commands as a user runs them: clear one-line errors for bad input, and the
happy paths on a real event store."""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
import sys
import time

import pytest

from aiqleads.events import attribution
from aiqleads.events.log import EventLog
from aiqleads.events.records import Feedback, Impression

BIN = pathlib.Path(sys.executable).parent / "aiqleads"


def aiqleads(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=120, env=env)


def one_line_error(result: subprocess.CompletedProcess, *words: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines, "no error message"
    for word in words:
        assert word in result.stderr, result.stderr


def test_without_a_running_stack_the_commands_say_how_to_start_one(tmp_path):
    for args in (
        ("events", "ingest", "--data", str(tmp_path)),
        ("quality", "report"),
        ("simulate", "--data", str(tmp_path)),
    ):
        result = aiqleads(*args, "--run-dir", str(tmp_path / "nothing-here"))
        one_line_error(result, "no running stack found", "aiqleads serve")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("quality", "report", "--since", "yesterday"), ("not a duration",)),
        (("quality", "report", "--since", "0s"), ("out of range",)),
        (("events", "ingest", "--data", "DATA", "--lateness", "-1d"), ("out of range",)),
    ],
)
def test_bad_durations_are_usage_errors(tmp_path, args, words):
    args = tuple(str(tmp_path) if a == "DATA" else a for a in args)
    one_line_error(aiqleads(*args, "--event-store", "redis://127.0.0.1:1/0"), *words)


def test_simulate_refuses_other_hosts_and_non_synthetic_data(tmp_path, smoke_dataset):
    result = aiqleads("simulate", "--data", str(smoke_dataset), "--url", "http://10.1.2.3:8080")
    one_line_error(result, "not a loopback address")
    plain = tmp_path / "plain"
    shutil.copytree(smoke_dataset, plain)
    shutil.rmtree(plain / "ground_truth")
    result = aiqleads("simulate", "--data", str(plain), "--url", "http://127.0.0.1:9")
    one_line_error(result, "hidden preferences")


def test_ingest_with_the_store_down_is_a_clear_error(tmp_path, smoke_dataset):
    result = aiqleads(
        "events", "ingest", "--data", str(smoke_dataset), "--event-store", "redis://127.0.0.1:1/0"
    )
    one_line_error(result, "unreachable")


def test_quality_report_prints_each_arm_with_intervals(event_store):
    log = EventLog(event_store.url)
    now = time.time()
    key = attribution.new_key()
    rows = []
    for i in range(40):
        variant = "canary" if i % 4 == 0 else "stable"
        rid = attribution.issue(key, 5 if variant == "stable" else 6, variant, f"u{i}", now)
        rows.append(Impression(rid, now, f"u{i}", 5 if variant == "stable" else 6, variant, 2,
                               ("a", "b"), (0.5, 0.4), "miss"))  # fmt: skip
        if i % 5 == 0:
            log.append_feedback(Feedback(f"f{i}", rid, now + 1, f"u{i}", "a", "click",
                                         5 if variant == "stable" else 6, variant, now))  # fmt: skip
    log.append_impressions(rows)
    log.close()
    text = aiqleads("quality", "report", "--event-store", event_store.url, "--since", "10m")
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0].split()[:4] == ["version", "variant", "impressions", "users"]
    stable = next(line for line in lines if line.startswith("5 "))
    assert stable.split()[2:4] == ["30", "30"]  # impressions, users
    assert "0.200 [" in stable  # 6 clicks of 30 answers (i = 5, 15, 25, ...)
    as_json = json.loads(
        aiqleads("quality", "report", "--event-store", event_store.url, "--json").stdout
    )
    canary = next(row for row in as_json if row["variant"] == "canary")
    assert (canary["impressions"], canary["ctr"]["value"]) == (10, 0.2)  # i = 0, 20 clicked
