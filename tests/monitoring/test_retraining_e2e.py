"""The loop closes, with real processes: served-feature drift -> Prometheus alert ->
Alertmanager -> the trigger -> events ingest + pipeline run -> a new version in service.

It runs on the session's stack (`aiqleads serve` on the loop world, tests/loop_fixtures.py),
whose Prometheus scrapes every second. The alerts' holds default to minutes, so this test
reloads Prometheus' rules and Alertmanager's config with short ones for its own length
(a 10-s drift hold, a 2-s group wait, a 10-s repeat) and restores them after.

The simulator's users (seed 7) ask at 20 req/s; after two minutes of normal traffic the busiest
metro's users move to another metro (`metro-shift`). The thresholds are the pipeline's; the
drift on clean traffic they were checked against was measured with other seeds and
scenarios (docs/monitoring.md, docs/benchmarks.md).
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import re
import subprocess
import time
import urllib.parse
import urllib.request

import pytest
from loop_fixtures import BIN, run_cli, wait_healthy, wait_settled

from monitoring import alertmanager, dashboards, rules, stack_configs
from serving import auth
from serving.process import http_status, wait_until
from serving.settings import AlertmanagerSettings, AlertSettings

pytestmark = pytest.mark.e2e

SEED = 7
RATE = 20
NORMAL_SECONDS = 120  # before the shift (the first gauges take a window to appear)
TRAFFIC_SECONDS = 360
DRIFT_ALERT = "AiqleadsServedFeatureDrift"
FAST_ALERTS = AlertSettings(drift_for_seconds=10, for_seconds=30, rate_window_seconds=30)
FAST_ROUTING = AlertmanagerSettings(
    group_wait_seconds=2, group_interval_seconds=5, repeat_interval_seconds=10
)
RUN_TIMEOUT_SECONDS = 1500
PANEL_RANGE_SECONDS = 300


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _post(url: str, body: bytes = b"", content_type: str = "application/json") -> bytes:
    headers = {"content-type": content_type}
    if os.environ.get(auth.TOKEN_ENV):  # the front door's token (tests/loop_fixtures.py)
        headers.update(auth.bearer(os.environ[auth.TOKEN_ENV]))
    request = urllib.request.Request(url, body, headers, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read()


def _query(prometheus: str, expr: str) -> list[dict]:
    return _get(f"{prometheus}/api/v1/query?{urllib.parse.urlencode({'query': expr})}")["data"][
        "result"
    ]


def _query_range(prometheus: str, expr: str, seconds: float) -> list[dict]:
    end = time.time()
    params = {"query": expr, "start": end - seconds, "end": end, "step": 5}
    return _get(f"{prometheus}/api/v1/query_range?{urllib.parse.urlencode(params)}")["data"][
        "result"
    ]


def _firing(prometheus: str, name: str) -> list[dict]:
    alerts = _get(f"{prometheus}/api/v1/alerts")["data"]["alerts"]
    return [a for a in alerts if a["labels"]["alertname"] == name and a["state"] == "firing"]


def _max_drift_ratio(prometheus: str) -> float:
    values = [float(r["value"][1]) for r in _query(prometheus, rules.DRIFT_RATIO)]
    return max(values, default=math.nan)


def _answer_version(stack) -> int:
    body = json.dumps({"user_id": "u000001", "k": 5}).encode()
    return int(json.loads(_post(f"{stack.front}/v1/recommendations", body))["model_version"])


def _reload_monitoring(stack, alert_settings: AlertSettings, routing: AlertmanagerSettings):
    """Rewrite the stack's rules and Alertmanager config, and have both reload them."""
    directory = stack.run_dir / stack_configs.CONFIG_DIR
    (directory / "aiqleads.rules.yml").write_text(rules.render(alert_settings))
    trigger = stack.addresses.trigger_url
    am_config = alertmanager.config(routing, trigger)
    (directory / stack_configs.ALERTMANAGER_FILE).write_text(json.dumps(am_config))
    _post(f"{stack.addresses.prometheus_url}/-/reload")
    _post(f"{stack.addresses.alertmanager_url}/-/reload")


@pytest.mark.timeout(2400)
def test_drift_alert_retrains_and_serves_a_new_version(
    loop_world, served_stack, tmp_path, screenshot, line_pixels
):
    stack = served_stack
    prometheus, trigger = stack.addresses.prometheus_url, stack.addresses.trigger_url
    assert prometheus and trigger and stack.addresses.alertmanager_url, stack.addresses
    wait_healthy(stack)
    runs_before = len(_get(f"{trigger}/runs")["runs"])
    versions_before = loop_world.versions()
    old_version = _answer_version(stack)
    _reload_monitoring(stack, FAST_ALERTS, FAST_ROUTING)
    try:
        sim = subprocess.Popen(
            [
                str(BIN / "aiqleads"), "simulate", "--data", str(loop_world.data),
                "--url", stack.front, "--duration", str(TRAFFIC_SECONDS), "--rate", str(RATE),
                "--seed", str(SEED), "--scenario", f"metro-shift@{NORMAL_SECONDS}", "--json",
                "--run-dir", str(stack.run_dir),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        )  # fmt: skip
        started = time.monotonic()
        shift_at = started + NORMAL_SECONDS

        # 1. Normal traffic: the drift gauges are there and below their thresholds.
        clean = []
        while time.monotonic() < shift_at - 3:
            clean.append(_max_drift_ratio(prometheus))
            time.sleep(2)
        measured = [r for r in clean if not math.isnan(r)]
        assert measured, "no drift gauge on normal traffic"
        assert not _firing(prometheus, DRIFT_ALERT), clean
        clean_max = max(measured)

        # 2-3. The shift: the gauge rises, the alert fires, Alertmanager calls the trigger.
        wait_until(lambda: _max_drift_ratio(prometheus) > 1, 240, "drift above its threshold")
        gauge_at = time.monotonic()
        wait_until(lambda: _firing(prometheus, DRIFT_ALERT), 120, "the drift alert", interval=0.5)
        alert_at = time.monotonic()
        wait_until(
            lambda: len(_get(f"{trigger}/runs")["runs"]) > runs_before, 60, "a run", interval=0.5
        )
        run_at = time.monotonic()
        state = _get(f"{trigger}/runs")
        (run,) = state["runs"][runs_before:]
        assert run["reason"] == f"drift:{DRIFT_ALERT}", run
        assert run["alerts"][0]["labels"]["feature"] and run["alerts"][0]["value"]

        # 4. A second notification within the debounce window is suppressed, no second run.
        wait_until(
            lambda: (
                sum(_get(f"{trigger}/runs")["suppressed"].values())
                > sum(state["suppressed"].values())
            ),
            60,
            "a suppressed notification",
        )
        assert len(_get(f"{trigger}/runs")["runs"]) == runs_before + 1

        # Every dashboard panel's query returns data under live traffic.
        empty = [
            (panel.title, q.expr)
            for _, panel in dashboards.panels()
            for q in panel.queries
            if not _query_range(prometheus, q.expr, PANEL_RANGE_SECONDS)
        ]
        assert not empty, empty
        page = run_cli(
            "monitor", "snapshot", "--out", str(tmp_path / "snapshot"),
            "--run-dir", str(stack.run_dir), "--since", "5m",
        )  # fmt: skip
        assert "0 without data" in page.stdout, page.stdout
        image = screenshot(
            tmp_path / "snapshot" / "index.html", tmp_path / "shot.png", tmp_path / "p"
        )
        assert all(n > 300 for n in line_pixels(image).values())

        out, err = sim.communicate(timeout=TRAFFIC_SECONDS + 300)
        assert sim.returncode == 0, err[-3000:]

        # 5. The run ingests the served events and trains; 6. a new version is served.
        def finished() -> bool:
            return _get(f"{trigger}/runs")["runs"][runs_before]["outcome"] != "running"

        wait_until(finished, RUN_TIMEOUT_SECONDS, "the retraining run", interval=5)
        run = _get(f"{trigger}/runs")["runs"][runs_before]
        log = pathlib.Path(run["log"]).read_text() if run["log"] else ""
        assert run["outcome"] == "succeeded", (run, log[-4000:])
        assert "== events ingest" in log and "== pipeline run" in log
        assert f"run reason drift:{DRIFT_ALERT}" in log
        # The served events reach the data set. Whether the day's span as a whole drifts past
        # the pipeline's limits depends on how much of it is shifted traffic (the run starts
        # seconds after the alert, and earlier traffic of the day is in the same span); either
        # way an alert-triggered run is not blocked by population shifts: it retrains on them
        # (tests/components/drift_check/test_drift.py checks the recording).
        written = re.search(r"feedback: [\d,]+ read, ([\d,]+) written", log)
        assert written and int(written.group(1).replace(",", "")) > 0, log[:3000]
        assert "drift check: passed" in log, log[-4000:]
        new_versions = sorted(set(loop_world.versions()) - set(versions_before))
        assert new_versions, log[-3000:]
        new = new_versions[-1]
        _serve_new_version(stack, loop_world, new)
        served_at = time.monotonic()
        assert _answer_version(stack) == new != old_version
        metrics = http_status(f"{trigger}/metrics")[1].decode()
        assert 'aiqleads_trigger_runs_finished_total{outcome="succeeded"}' in metrics

        print(
            f"\ndrift start -> gauge over threshold {gauge_at - shift_at:.1f} s, -> alert "
            f"{alert_at - shift_at:.1f} s, -> run started {run_at - shift_at:.1f} s, -> new "
            f"version {new} in service {served_at - shift_at:.1f} s (clean traffic's largest "
            f"drift: {clean_max:.2f}x its threshold)"
        )
    finally:
        if "sim" in locals() and sim.poll() is None:
            sim.kill()
        _reload_monitoring(stack, AlertSettings(), AlertmanagerSettings())
    wait_healthy(stack)


def _serve_new_version(stack, world, version: int) -> None:
    """Until the answers come from ``version``, on every replica. The stack's deployment pins the stable label
    (`aiqleads models`), so the retrained version is promoted, as its blessing allows."""

    def serving() -> bool:
        return _answer_version(stack) == version

    if not serving():
        run_cli(
            "models", "promote", str(version), "--label", "stable",
            "--run-dir", str(stack.run_dir), "--pipeline-config", str(world.config),
            "--reason", f"retrained on {DRIFT_ALERT}",
        )  # fmt: skip
    wait_settled(serving, 120, f"version {version} in every replica's answers")
