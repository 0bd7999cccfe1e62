"""`python -m serving.feature_store`: materialize if needed, then fold the event log's
feedback into the online store until SIGTERM; ``/metrics`` serves the updater's metrics.

Every flag comes from `UpdaterConfig` (`aiqleads.settings_flags`).
"""

from __future__ import annotations

import logging
import signal
import sys
import threading

import click
from prometheus_client import start_http_server

from aiqleads.errors import AiqleadsError
from serving.feature_store.config import UpdaterConfig, parse_config
from serving.main_command import process_errors, settings_command

log = logging.getLogger("serving.feature_store")


@settings_command(UpdaterConfig)
def main(**flags: object) -> None:
    """Keep the online feature store fresh: materialization, then streaming updates."""
    with process_errors("features"):
        _run(parse_config(flags).with_passwords())  # passwords read from files, not argv


def _run(config: UpdaterConfig) -> None:
    from aiqleads.events.log import EventLog, redact
    from serving.feature_store.metrics import UpdaterMetrics
    from serving.feature_store.updater import Updater

    metrics = UpdaterMetrics()
    try:
        server, _thread = start_http_server(config.port, config.host, registry=metrics.registry)
    except OSError as e:
        raise AiqleadsError(f"cannot bind {config.host}:{config.port}: {e}") from e
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    events = EventLog(config.event_store_url)
    updater = Updater(config, events, metrics)
    try:
        updater.materialize_if_needed(click.echo)
        metrics.ready.set(1)
        click.echo(
            f"feature updater ready metrics=http://{config.host}:{server.server_port}/metrics "
            f"store={redact(config.online_store_url)} events={redact(config.event_store_url)}"
        )
        sys.stdout.flush()
        updater.run(stop)
    finally:
        updater.close()
        events.close()
        server.shutdown()
    click.echo("feature updater stopped")


if __name__ == "__main__":
    main()
