"""`python -m monitoring`: follow the event log and serve online-quality metrics until SIGTERM.

Every flag comes from `MonitorConfig` (`aiqleads.settings_flags`).
"""

from __future__ import annotations

import logging
import signal
import sys
import threading

import click
from prometheus_client import start_http_server

from aiqleads.errors import AiqleadsError
from aiqleads.events.log import EventLog, redact
from aiqleads.settings_flags import click_options
from monitoring.config import MonitorConfig, parse_config
from monitoring.drift import DriftCollector, ServedDrift
from monitoring.online import OnlineMonitor


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click_options(MonitorConfig)
def main(**flags: object) -> None:
    """Export online quality per model version and variant from the event log."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s monitor %(levelname)s %(message)s")
    try:
        config = parse_config(flags).with_passwords()  # read from a file, not argv
    except AiqleadsError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(e.exit_code)
    event_log = EventLog(config.event_store_url)
    drift = ServedDrift(
        config.model_base_path,
        config.drift_window_seconds,
        config.drift_interval_seconds,
        config.drift_min_rows,
    )
    monitor = OnlineMonitor(
        event_log, config.window_seconds, block_ms=config.block_ms, on_impression=drift.add
    )
    monitor.registry.register(DriftCollector(drift))
    try:
        server, _thread = start_http_server(config.port, config.host, registry=monitor.registry)
    except OSError as e:
        click.echo(f"error: cannot bind {config.host}:{config.port}: {e}", err=True)
        sys.exit(2)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    drift_thread = threading.Thread(target=drift.run, args=(stop,), name="drift", daemon=True)
    drift_thread.start()
    click.echo(
        f"monitor ready metrics=http://{config.host}:{server.server_port}/metrics "
        f"events={redact(config.event_store_url)} window={config.window_seconds:g}s"
    )
    sys.stdout.flush()
    monitor.run(stop)
    server.shutdown()
    event_log.close()
    click.echo("monitor stopped")


if __name__ == "__main__":
    main()
