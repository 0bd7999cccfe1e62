"""The trigger's debounce and memory, on hand-made Alertmanager notifications and a fake clock."""

from __future__ import annotations

import json

from monitoring.trigger_state import (
    FAILED,
    INTERRUPTED,
    RUNNING,
    STATE_FILE,
    SUCCEEDED,
    SUPPRESSED_INTERVAL,
    SUPPRESSED_NOT_RETRAIN,
    SUPPRESSED_RUNNING,
    TriggerState,
    reason_of,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def notification(*names: str, kind: str = "drift", action: str = "retrain") -> dict:
    return {
        "groupKey": f"{{}}:{{alertname={names[0]!r}}}",
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": {
                    "alertname": n,
                    "action": action,
                    "reason_kind": kind,
                    "feature": "region",
                },
                "annotations": {"value": "2.5"},
                "startsAt": "2026-12-06T10:00:00Z",
            }
            for n in names
        ],
    }


def test_one_run_at_a_time_then_a_minimum_interval(tmp_path):
    clock = Clock()
    state = TriggerState(tmp_path, min_interval_seconds=600, clock=clock)
    first = state.receive(notification("AiqleadsServedFeatureDrift"))
    assert first.started is not None and first.suppressed is None
    assert first.started.reason == "drift:AiqleadsServedFeatureDrift"
    assert first.started.alerts[0]["value"] == "2.5"
    assert first.started.alerts[0]["labels"]["feature"] == "region"
    clock.now += 10
    assert (
        state.receive(notification("AiqleadsServedFeatureDrift")).suppressed == SUPPRESSED_RUNNING
    )
    clock.now += 100
    state.finish(first.started, SUCCEEDED, "ok")
    assert first.started.duration_seconds == 110
    clock.now += 10  # 120 s after the start: inside the 600-s interval
    assert state.receive(notification("AiqleadsOnlineCtrDropped", kind="quality")).suppressed == (
        SUPPRESSED_INTERVAL
    )
    clock.now += 480  # 600 s after the start
    second = state.receive(notification("AiqleadsOnlineCtrDropped", kind="quality"))
    assert second.started is not None and second.started.run_id == 2
    assert second.started.reason == "quality:AiqleadsOnlineCtrDropped"
    assert state.suppressed == {SUPPRESSED_RUNNING: 1, SUPPRESSED_INTERVAL: 1}
    assert state.received == {"AiqleadsServedFeatureDrift": 2, "AiqleadsOnlineCtrDropped": 2}


def test_alerts_of_one_group_make_one_run_and_others_are_recorded_only(tmp_path):
    state = TriggerState(tmp_path, min_interval_seconds=0, clock=Clock())
    decision = state.receive(
        notification("AiqleadsServedFeatureDrift", "AiqleadsServedFeatureDrift")
    )
    assert decision.started is not None and len(decision.started.alerts) == 2
    assert len(state.runs) == 1
    state.finish(decision.started, FAILED, "pipeline run exited 2")
    ignored = state.receive(notification("AiqleadsLatencyHigh", action="none"))
    assert ignored.suppressed == SUPPRESSED_NOT_RETRAIN and len(state.runs) == 1


def test_reason_names_every_kind_and_alert_once():
    alerts = notification("B", "A")["alerts"] + notification("A", kind="quality")["alerts"]
    assert reason_of(alerts) == "drift+quality:A+B"


def test_state_survives_a_restart_and_a_run_in_progress_is_interrupted(tmp_path):
    clock = Clock()
    state = TriggerState(tmp_path, min_interval_seconds=600, clock=clock)
    run = state.receive(notification("AiqleadsServedFeatureDrift")).started
    assert run is not None and run.outcome == RUNNING
    state.receive(notification("AiqleadsServedFeatureDrift"))
    clock.now += 30
    again = TriggerState(tmp_path, min_interval_seconds=600, clock=clock)  # a restart
    assert again.received == {"AiqleadsServedFeatureDrift": 2}
    assert again.suppressed == {SUPPRESSED_RUNNING: 1}
    (old,) = again.runs
    assert old.outcome == INTERRUPTED and old.finished_at == 1_030.0
    # The debounce clock survived too: still inside the interval of that start.
    assert (
        again.receive(notification("AiqleadsServedFeatureDrift")).suppressed == SUPPRESSED_INTERVAL
    )
    saved = json.loads((tmp_path / STATE_FILE).read_text())
    assert saved["runs"][0]["reason"] == "drift:AiqleadsServedFeatureDrift"
