"""Progressive delivery, applied: the A/B report of the current canary (`monitoring.ab`) with
its data (the event log) and guardrails (the gateways' metrics through Prometheus), and the
controller that acts on it (``aiqleads ab watch``, docs/registry.md).

The controller, every ``interval`` seconds:

1. with no canary, makes the newest version the Pusher wrote (newer than every version the
   deployment ever labelled) the canary at the configured share of users, never ``stable``;
2. with a canary, runs the report and applies its decision: ``promote`` makes the canary
   stable, ``rollback`` drops the canary label; ``continue`` waits. Each change is recorded in
   the deployment history with the report's reason and the controller as the actor.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import pathlib
import time
import urllib.parse
import urllib.request
from collections.abc import Callable

from aiqleads.events.log import EventLog, entry_id_at
from aiqleads.events.records import FEEDBACK_STREAM, IMPRESSIONS_STREAM, Feedback, Impression
from monitoring import ab
from serving.deployment import (
    INIT,
    PROMOTE,
    STABLE,
    Change,
    Deployment,
    DeploymentState,
    version_dir_complete,
)

ACTOR = "rollout controller"
PROMETHEUS_TIMEOUT_SECONDS = 5.0
ERROR_QUERY = (
    'sum by (variant) (increase(aiqleads_gateway_variant_answers_total{{outcome="error"}}[{w}s]))'
    " / sum by (variant) (increase(aiqleads_gateway_variant_answers_total[{w}s]))"
)
P95_QUERY = (
    "1000 * histogram_quantile(0.95, sum by (variant, le) "
    "(increase(aiqleads_gateway_variant_seconds_bucket[{w}s])))"
)
REQUESTS_QUERY = "sum by (variant) (increase(aiqleads_gateway_variant_answers_total[{w}s]))"
log = logging.getLogger("aiqleads.rollout")


def experiment_of(state: DeploymentState, history: list[Change]) -> ab.Experiment | None:
    """The current canary experiment: since the last change of the canary or its share."""
    if state.canary is None or state.stable is None:
        return None
    start = None
    for change in reversed(history):
        moved = (change.canary, change.canary_fraction) != (
            change.previous_canary,
            change.previous_fraction,
        )
        if change.action == INIT or moved or change.stable != change.previous_stable:
            start = change.time
            break
    if start is None:
        return None
    return ab.Experiment(state.stable, state.canary, start, state.canary_fraction)


def read_events(url: str, since: float) -> tuple[list[Impression], list[Feedback]]:
    """Impressions and feedback logged since ``since`` (seconds since the epoch)."""
    event_log = EventLog(url, timeout_seconds=5.0)
    start = entry_id_at(since)
    try:
        event_log.ping()
        impressions = [
            Impression.decode(e.raw) for e in event_log.range(IMPRESSIONS_STREAM, start=start)
        ]
        feedback = [Feedback.decode(e.raw) for e in event_log.range(FEEDBACK_STREAM, start=start)]
    finally:
        event_log.close()
    return impressions, feedback


def guardrails(prometheus_url: str | None, since: float, now: float) -> dict[str, ab.Guardrail]:
    """Error rate and p95 latency per variant over the experiment, from Prometheus ({} when
    there is no Prometheus or it has no data yet)."""
    if not prometheus_url:
        return {}
    window = max(int(now - since), 30)
    values: dict[str, dict[str, float]] = {}
    for name, query in (
        ("error_rate", ERROR_QUERY),
        ("p95_ms", P95_QUERY),
        ("requests", REQUESTS_QUERY),
    ):
        for variant, value in _query(prometheus_url, query.format(w=window)).items():
            if math.isfinite(value):
                values.setdefault(variant, {})[name] = value
    return {v: ab.Guardrail(**fields) for v, fields in values.items() if v in ab.ARMS}


def _query(prometheus_url: str, query: str) -> dict[str, float]:
    url = f"{prometheus_url}/api/v1/query?{urllib.parse.urlencode({'query': query})}"
    try:
        with urllib.request.urlopen(url, timeout=PROMETHEUS_TIMEOUT_SECONDS) as response:
            body = json.loads(response.read())
    except (OSError, ValueError) as e:
        log.warning("Prometheus query failed (%s): %s", query, e)
        return {}
    out = {}
    for series in body.get("data", {}).get("result", []):
        variant = series.get("metric", {}).get("variant")
        if variant is not None:
            out[variant] = float(series["value"][1])
    return out


@dataclasses.dataclass
class Sources:
    """Where the report's inputs come from."""

    event_store_url: str
    prometheus_url: str | None = None


def report(
    deployment: Deployment, sources: Sources, design: ab.Design, now: float | None = None
) -> ab.Report | None:
    """The A/B report of the current canary (None: there is no canary)."""
    now = time.time() if now is None else now
    state = deployment.state()
    experiment = experiment_of(state, deployment.history())
    if experiment is None:
        return None
    impressions, feedback = read_events(sources.event_store_url, experiment.start)
    guards = guardrails(sources.prometheus_url, experiment.start, now)
    return ab.analyze(impressions, feedback, experiment, design, now, guards)


class Controller:
    """Applies the A/B decision and stages new pushes as canaries (see the module doc)."""

    def __init__(
        self,
        deployment: Deployment,
        sources: Sources,
        design: ab.Design,
        canary_fraction: float,
        say: Callable[[str], None] = log.info,
    ) -> None:
        self.deployment, self.sources, self.design = deployment, sources, design
        self.canary_fraction = canary_fraction
        self.say = say

    def step(self, now: float | None = None) -> Change | None:
        """One round; the change it made, if any."""
        state = self.deployment.state()
        if state.canary is None:
            return self._stage_new_push(state)
        result = report(self.deployment, self.sources, self.design, now)
        if result is None or result.decision == ab.CONTINUE:
            return None
        reason = f"A/B {result.decision}: {result.reason}"
        if result.decision == ab.PROMOTE:
            change = self.deployment.promote(state.canary, STABLE, ACTOR, reason)
        else:
            change = self.deployment.rollback_canary(ACTOR, reason)
        self.say(f"{change.action} {change.version}: {reason}")
        return change

    def _stage_new_push(self, state: DeploymentState) -> Change | None:
        labelled: set[int] = set()
        for change in self.deployment.history():
            labelled |= {v for v in (change.stable, change.canary, change.version) if v}
        base = pathlib.Path(state.base_path)
        newest = max(labelled | set(state.loaded), default=0)
        fresh = sorted(
            int(p.name)
            for p in (base.iterdir() if base.is_dir() else [])
            if p.name.isdigit() and int(p.name) > newest and version_dir_complete(base, int(p.name))
        )
        if not fresh:
            return None
        version = fresh[-1]
        fraction = state.canary_fraction or self.canary_fraction
        change = self.deployment.promote(
            version,
            "canary",
            ACTOR,
            f"new push {version}: canary for {fraction:.0%} of users until the A/B test decides",
            fraction=fraction,
        )
        self.say(f"{PROMOTE} {version} to canary ({fraction:.0%})")
        return change

    def run(self, interval: float, stop: Callable[[], bool]) -> None:
        while not stop():
            try:
                self.step()
            except Exception as e:  # keep watching; the next round retries
                self.say(f"round failed: {e}")
            deadline = time.monotonic() + interval
            while time.monotonic() < deadline and not stop():
                time.sleep(min(0.2, interval))
