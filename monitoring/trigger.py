"""The retraining trigger: Alertmanager's webhook receiver (`python -m monitoring.trigger`,
`aiqleads trigger`).

``POST /alerts`` takes Alertmanager's webhook notification (version 4); `TriggerState`
decides (debounce) and a started run executes in a background thread (`retraining`).
``GET /runs`` lists the runs and why each started, ``GET /metrics`` exports the trigger's
own metrics, ``GET /healthz`` answers once it listens. Every flag comes from
`TriggerConfig` (`aiqleads.settings_flags`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

import click
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from aiqleads.errors import AiqleadsError
from aiqleads.settings_flags import click_options
from monitoring import retraining
from monitoring.trigger_config import TriggerConfig, parse_config
from monitoring.trigger_state import (
    FAILED,
    INTERRUPTED,
    RUNNING,
    SUCCEEDED,
    SUPPRESSED_INTERVAL,
    SUPPRESSED_NOT_RETRAIN,
    SUPPRESSED_RUNNING,
    Run,
    TriggerState,
)

log = logging.getLogger("monitoring.trigger")
ALERTS_PATH = "/alerts"
RUNS_PATH = "/runs"
METRICS_PATH = "/metrics"
HEALTH_PATH = "/healthz"
MAX_BODY_BYTES = 4 * 1024 * 1024
CONTENT_TYPE = "text/plain; version=0.0.4"
SUPPRESSION_REASONS = (SUPPRESSED_RUNNING, SUPPRESSED_INTERVAL, SUPPRESSED_NOT_RETRAIN)
FINISHED_OUTCOMES = (SUCCEEDED, FAILED, INTERRUPTED)


class TriggerCollector(Collector):
    """The trigger's metrics, read from its state (so they survive its restarts)."""

    def __init__(self, state: TriggerState) -> None:
        self._state = state

    def collect(self) -> Iterator[Metric]:
        snap = self._state.snapshot()
        received = CounterMetricFamily(
            "aiqleads_trigger_alerts_received", "Firing alerts received", labels=["alertname"]
        )
        for name, n in sorted(snap["received"].items()):
            received.add_metric([name], n)
        suppressed = CounterMetricFamily(
            "aiqleads_trigger_runs_suppressed", "Notifications that started no run", labels=["why"]
        )
        # Every label value from the start (at 0), so rates and dashboards see a series.
        for why in sorted({*SUPPRESSION_REASONS, *snap["suppressed"]}):
            suppressed.add_metric([why], snap["suppressed"].get(why, 0))
        runs = snap["runs"]
        by_reason = CounterMetricFamily(
            "aiqleads_trigger_runs_by_reason", "Runs started, by reason", labels=["reason"]
        )
        reasons: dict[str, int] = {}
        for run in runs:
            reasons[run["reason"]] = reasons.get(run["reason"], 0) + 1
        for reason, n in sorted(reasons.items()):
            by_reason.add_metric([reason], n)
        outcomes = CounterMetricFamily(
            "aiqleads_trigger_runs_finished", "Runs finished, by outcome", labels=["outcome"]
        )
        for outcome in sorted({*FINISHED_OUTCOMES, *(r["outcome"] for r in runs)} - {RUNNING}):
            outcomes.add_metric([outcome], sum(r["outcome"] == outcome for r in runs))
        yield received
        yield suppressed
        yield by_reason
        yield outcomes
        yield CounterMetricFamily(
            "aiqleads_trigger_runs_started", "Retraining runs started", value=len(runs)
        )
        yield GaugeMetricFamily(
            "aiqleads_trigger_run_in_progress",
            "1 while a run executes",
            value=float(any(r["outcome"] == "running" for r in runs)),
        )
        finished = [r for r in runs if r["outcome"] != "running"]
        if runs:
            yield GaugeMetricFamily(
                "aiqleads_trigger_last_run_start_timestamp_seconds",
                "When the last run started",
                value=runs[-1]["started_at"],
            )
        if finished:
            last = finished[-1]
            success = GaugeMetricFamily(
                "aiqleads_trigger_last_run_success",
                "1 when the last finished run succeeded, 0 when it failed",
                labels=["reason", "outcome"],
            )
            success.add_metric(
                [last["reason"], last["outcome"]], float(last["outcome"] == SUCCEEDED)
            )
            yield success
            yield GaugeMetricFamily(
                "aiqleads_trigger_last_run_duration_seconds",
                "How long the last finished run took",
                value=last["duration_seconds"] or 0.0,
            )


class Trigger:
    """Receives notifications, starts runs in threads, serves its state."""

    def __init__(self, config: TriggerConfig) -> None:
        assert config.state_dir is not None  # parse_config checks it
        self.config = config
        self.state = TriggerState(config.state_dir, config.min_interval_seconds)
        self.registry = CollectorRegistry()
        self.registry.register(TriggerCollector(self.state))
        self.threads: list[threading.Thread] = []

    def start_run(self, run: Run) -> None:
        # A daemon: when the trigger stops, its steps get SIGTERM from the kernel (their
        # parent thread is gone) and the next start records the run as interrupted.
        thread = threading.Thread(
            target=self._execute, args=(run,), name=f"run-{run.run_id}", daemon=True
        )
        thread.start()
        self.threads.append(thread)

    def _execute(self, run: Run) -> None:
        assert self.config.state_dir is not None
        log_path = self.config.state_dir / "runs" / f"run-{run.run_id}.log"
        log.info("run %d starts: %s (%s)", run.run_id, run.reason, self.config.runner)
        try:
            outcome = retraining.execute(self.config, run.reason, log_path)
        except (AiqleadsError, OSError) as e:
            outcome = retraining.Outcome(False, str(e))
        result = SUCCEEDED if outcome.succeeded else FAILED
        self.state.finish(run, result, outcome.detail, str(log_path))
        log.info("run %d %s: %s", run.run_id, result, outcome.detail)

    # -- HTTP ----------------------------------------------------------------------------
    async def alerts(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError) as e:
            return web.json_response({"error": f"not JSON: {e}"}, status=400)
        if not isinstance(body, dict) or not isinstance(body.get("alerts"), list):
            return web.json_response(
                {"error": "expected Alertmanager's webhook body with an 'alerts' list"}, status=400
            )
        decision = self.state.receive(body)
        if decision.started is not None:
            self.start_run(decision.started)
            log.info("notification %s: run %d", body.get("groupKey"), decision.started.run_id)
            return web.json_response(
                {"started": decision.started.run_id, "reason": decision.started.reason}
            )
        log.info("notification %s suppressed: %s", body.get("groupKey"), decision.suppressed)
        return web.json_response({"suppressed": decision.suppressed})

    async def runs(self, request: web.Request) -> web.Response:
        return web.json_response(self.state.snapshot(), dumps=lambda o: json.dumps(o, indent=2))

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE}
        )

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_post(ALERTS_PATH, self.alerts)
        app.router.add_get(RUNS_PATH, self.runs)
        app.router.add_get(METRICS_PATH, self.metrics)
        app.router.add_get(HEALTH_PATH, self.health)
        return app


async def _serve(trigger: Trigger, stop: asyncio.Event) -> None:
    runner = web.AppRunner(trigger.app())
    await runner.setup()
    site = web.TCPSite(runner, trigger.config.host, trigger.config.port)
    await site.start()
    port = runner.addresses[0][1] if runner.addresses else trigger.config.port
    click.echo(
        f"trigger ready url=http://{trigger.config.host}:{port} runner={trigger.config.runner} "
        f"min_interval={trigger.config.min_interval_seconds:g}s state={trigger.config.state_dir}"
    )
    sys.stdout.flush()
    await stop.wait()
    await runner.cleanup()


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click_options(TriggerConfig)
def main(**flags: Any) -> None:
    """Alertmanager's webhook receiver: starts retraining runs, debounced, with their reason."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s trigger %(levelname)s %(message)s")
    try:
        config = parse_config(flags)
        trigger = Trigger(config)
    except (AiqleadsError, ValueError) as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        loop.run_until_complete(_serve(trigger, stop))
    except OSError as e:
        click.echo(f"error: cannot listen on {config.host}:{config.port}: {e}", err=True)
        sys.exit(2)
    finally:
        loop.close()
    click.echo("trigger stopped")


if __name__ == "__main__":
    main()
