"""The retraining trigger's decisions and memory: debounce, reasons, outcomes, persisted.

An Alertmanager notification is one *group* of alerts. The trigger starts at most one run per
notification, never two at a time, and none sooner than ``min_interval_seconds`` after the
previous start; everything else is counted as suppressed, with why. Each run records its
reason (``<reason_kind>:<alertname>``, e.g. ``drift:AiqleadsServedFeatureDrift``) and the
alerts behind it (labels and the value the rule saw).

The state is a small JSON file written atomically after every change, so a restarted
trigger keeps its counters, its history and its debounce clock; a run that was in progress
when the trigger died is recorded as ``interrupted`` (its process died with the trigger).
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from monitoring.rules import ACTION_LABEL, REASON_KIND_LABEL, RETRAIN, VALUE_ANNOTATION

STATE_FILE = "trigger-state.json"
MAX_RUNS_KEPT = 200
RUNNING, SUCCEEDED, FAILED, INTERRUPTED = "running", "succeeded", "failed", "interrupted"
SUPPRESSED_RUNNING = "run_in_progress"
SUPPRESSED_INTERVAL = "min_interval"
SUPPRESSED_NOT_RETRAIN = "not_a_retraining_alert"
DEFAULT_REASON_KIND = "alert"


@dataclasses.dataclass
class Run:
    """One retraining run the trigger started."""

    run_id: int
    reason: str
    group_key: str
    alerts: list[dict[str, Any]]  # {"name", "labels", "value", "starts_at"}
    started_at: float
    outcome: str = RUNNING
    finished_at: float | None = None
    detail: str = ""  # the failing step's last lines, or "ok"
    log: str = ""

    @property
    def duration_seconds(self) -> float | None:
        return None if self.finished_at is None else self.finished_at - self.started_at


@dataclasses.dataclass(frozen=True)
class Decision:
    """What the trigger did with one notification."""

    started: Run | None
    suppressed: str | None  # why nothing started (None when a run started)


def reason_of(alerts: list[dict[str, Any]]) -> str:
    """``<reason_kind>:<alertname>`` (several names joined with ``+``, sorted)."""
    kinds = sorted({a["labels"].get(REASON_KIND_LABEL, DEFAULT_REASON_KIND) for a in alerts})
    names = sorted({a["labels"].get("alertname", "?") for a in alerts})
    return f"{'+'.join(kinds)}:{'+'.join(names)}"


def _alert_record(alert: dict[str, Any]) -> dict[str, Any]:
    labels = dict(alert.get("labels") or {})
    annotations = alert.get("annotations") or {}
    return {
        "name": labels.get("alertname", "?"),
        "labels": labels,
        "value": annotations.get(VALUE_ANNOTATION),
        "starts_at": alert.get("startsAt"),
    }


class TriggerState:
    """Counters, run history and the debounce rule; thread-safe; saved after each change."""

    def __init__(
        self,
        directory: pathlib.Path,
        min_interval_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = pathlib.Path(directory) / STATE_FILE
        self.min_interval = min_interval_seconds
        self.clock = clock
        self.lock = threading.Lock()
        self.received: Counter[str] = Counter()
        self.suppressed: Counter[str] = Counter()
        self.runs: list[Run] = []
        self._load()

    # -- persistence -------------------------------------------------------------------
    def _load(self) -> None:
        if not self.path.is_file():
            return
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError) as e:
            raise ValueError(f"trigger state {self.path} is unreadable ({e}); move it away") from e
        self.received = Counter(data.get("received", {}))
        self.suppressed = Counter(data.get("suppressed", {}))
        self.runs = [Run(**r) for r in data.get("runs", [])]
        interrupted = False
        for run in self.runs:
            if run.outcome == RUNNING:
                run.outcome, run.finished_at = INTERRUPTED, self.clock()
                run.detail = "the trigger stopped while the run was in progress"
                interrupted = True
        if interrupted:
            self._save()

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = {
            "received": dict(self.received),
            "suppressed": dict(self.suppressed),
            "runs": [dataclasses.asdict(r) for r in self.runs[-MAX_RUNS_KEPT:]],
        }
        tmp = self.path.with_name(f".{STATE_FILE}.tmp")
        tmp.write_text(json.dumps(body, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, self.path)

    # -- decisions ---------------------------------------------------------------------
    @property
    def running(self) -> Run | None:
        return next((r for r in reversed(self.runs) if r.outcome == RUNNING), None)

    @property
    def last_finished(self) -> Run | None:
        return next((r for r in reversed(self.runs) if r.outcome != RUNNING), None)

    def receive(self, notification: dict[str, Any]) -> Decision:
        """Count a webhook notification's alerts and decide whether a run starts."""
        with self.lock:
            alerts = [a for a in notification.get("alerts", []) if a.get("status") == "firing"]
            for alert in alerts:
                self.received[(alert.get("labels") or {}).get("alertname", "?")] += 1
            retrain = [a for a in alerts if (a.get("labels") or {}).get(ACTION_LABEL) == RETRAIN]
            decision = self._decide(notification, retrain)
            if decision.suppressed:
                self.suppressed[decision.suppressed] += 1
            self._save()
            return decision

    def _decide(self, notification: dict[str, Any], alerts: list[dict[str, Any]]) -> Decision:
        if not alerts:
            return Decision(None, SUPPRESSED_NOT_RETRAIN)
        if self.running is not None:
            return Decision(None, SUPPRESSED_RUNNING)
        now = self.clock()
        if self.runs and now - self.runs[-1].started_at < self.min_interval:
            return Decision(None, SUPPRESSED_INTERVAL)
        run = Run(
            run_id=(self.runs[-1].run_id + 1) if self.runs else 1,
            reason=reason_of(alerts),
            group_key=str(notification.get("groupKey", "")),
            alerts=[_alert_record(a) for a in alerts],
            started_at=now,
        )
        self.runs.append(run)
        return Decision(run, None)

    def finish(self, run: Run, outcome: str, detail: str, log: str = "") -> None:
        with self.lock:
            run.outcome, run.finished_at, run.detail, run.log = outcome, self.clock(), detail, log
            self._save()

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "received": dict(self.received),
                "suppressed": dict(self.suppressed),
                "runs": [
                    {**dataclasses.asdict(r), "duration_seconds": r.duration_seconds}
                    for r in self.runs
                ],
            }
