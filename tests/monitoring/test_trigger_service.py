"""The trigger as a process (`python -m monitoring.trigger`) on a free loopback port: it takes
Alertmanager's webhook, debounces, records, exports its metrics and keeps them across a
restart. The ``none`` runner records decisions without running anything; the ``local``
runner's steps are checked as command lines."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import urllib.request

import pytest

from monitoring import retraining
from monitoring.trigger_config import parse_config
from serving.process import free_port, http_status, wait_until


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def _metrics(base: str) -> dict[str, float]:
    _, body = http_status(f"{base}/metrics")
    out = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def _notification(name: str = "AiqleadsServedFeatureDrift") -> dict:
    return {
        "version": "4",
        "groupKey": f'{{}}/{{action="retrain"}}:{{alertname="{name}"}}',
        "status": "firing",
        "receiver": "aiqleads-trigger",
        "groupLabels": {"alertname": name},
        "alerts": [
            {
                "status": "firing",
                "labels": {
                    "alertname": name,
                    "action": "retrain",
                    "reason_kind": "drift",
                    "feature": "user_latitude",
                    "model_version": "7",
                },
                "annotations": {"summary": "drift", "value": "1.8"},
                "startsAt": "2026-12-06T10:00:00Z",
            }
        ],
    }


class TriggerProcess:
    def __init__(self, state_dir: pathlib.Path, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "monitoring.trigger", "--port", str(self.port),
                "--state-dir", str(state_dir), *args,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        wait_until(lambda: http_status(f"{self.url}/healthz")[0] == 200, 30, "trigger")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def test_webhook_debounce_metrics_and_a_restart(tmp_path):
    trigger = TriggerProcess(tmp_path, "--runner", "none", "--min-interval-seconds", "3600")
    try:
        first = _post(f"{trigger.url}/alerts", _notification())
        assert first == {"started": 1, "reason": "drift:AiqleadsServedFeatureDrift"}
        second = _post(f"{trigger.url}/alerts", _notification())
        assert second["suppressed"] in ("run_in_progress", "min_interval")
        wait_until(
            lambda: (
                _metrics(trigger.url).get(
                    'aiqleads_trigger_runs_finished_total{outcome="succeeded"}'
                )
                == 1
            ),
            10,
            "the run recorded",
        )
        m = _metrics(trigger.url)
        assert (
            m['aiqleads_trigger_alerts_received_total{alertname="AiqleadsServedFeatureDrift"}'] == 2
        )
        assert m["aiqleads_trigger_runs_started_total"] == 1
        assert sum(v for k, v in m.items() if k.startswith("aiqleads_trigger_runs_suppressed")) == 1
        key = 'aiqleads_trigger_last_run_success{outcome="succeeded",reason="drift:AiqleadsServedFeatureDrift"}'
        assert m[key] == 1
        runs = json.loads(http_status(f"{trigger.url}/runs")[1])["runs"]
        assert runs[0]["alerts"][0]["labels"]["feature"] == "user_latitude"
        assert runs[0]["alerts"][0]["value"] == "1.8"
        bad = urllib.request.Request(
            f"{trigger.url}/alerts", b"{", {"content-type": "application/json"}
        )
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(bad, timeout=5)
        assert e.value.code == 400
    finally:
        trigger.stop()
    again = TriggerProcess(tmp_path, "--runner", "none", "--min-interval-seconds", "3600")
    try:
        m = _metrics(again.url)
        assert m["aiqleads_trigger_runs_started_total"] == 1  # state survived the restart
        assert _post(f"{again.url}/alerts", _notification()) == {"suppressed": "min_interval"}
    finally:
        again.stop()


def test_a_failing_run_is_recorded_with_its_step(tmp_path):
    data = tmp_path / "missing-data"
    trigger = TriggerProcess(
        tmp_path / "state",
        "--runner",
        "local",
        "--data-dir",
        str(data),
        "--min-interval-seconds",
        "0",
    )
    try:
        assert _post(f"{trigger.url}/alerts", _notification())["started"] == 1
        key = 'aiqleads_trigger_runs_finished_total{outcome="failed"}'
        wait_until(lambda: _metrics(trigger.url).get(key) == 1, 60, "the failed run", interval=0.5)
        (run,) = json.loads(http_status(f"{trigger.url}/runs")[1])["runs"]
        assert run["detail"].startswith("pipeline run exited 2")
        assert any(
            k.startswith("aiqleads_trigger_last_run_success") and v == 0
            for k, v in _metrics(trigger.url).items()
        )
    finally:
        trigger.stop()


def test_local_and_kfp_runners_steps(tmp_path):
    local = parse_config(
        {
            "state_dir": tmp_path,
            "runner": "local",
            "data_dir": tmp_path / "data",
            "pipeline_config": tmp_path / "p.yaml",
            "event_store_url": "redis://127.0.0.1:1/0",
        }
    )
    ingest, train = retraining.steps(local, "drift:A", tmp_path)
    assert ingest.argv[1:] == ("events", "ingest", "--data", str(tmp_path / "data"))
    assert train.argv[1:] == (
        "pipeline", "run", "--data", str(tmp_path / "data"), "--reason", "drift:A",
        "--config", str(tmp_path / "p.yaml"),
    )  # fmt: skip
    kfp = parse_config(
        {"state_dir": tmp_path, "runner": "kfp", "kfp_config": tmp_path / "k.yaml",
         "pipeline_config": tmp_path / "p.yaml"}
    )  # fmt: skip
    compile_, run = retraining.steps(kfp, "quality:B", tmp_path)
    assert compile_.argv[1:4] == ("pipeline", "compile", "--config")
    assert run.argv[1:] == (
        "kfp", "run", "--kfp-config", str(tmp_path / "k.yaml"), "--reason", "quality:B",
        "--package", str(tmp_path / retraining.KFP_PACKAGE),
    )  # fmt: skip
    assert (
        retraining.steps(parse_config({"state_dir": tmp_path, "runner": "none"}), "x", tmp_path)
        == []
    )
