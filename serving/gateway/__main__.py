"""`python -m serving.gateway`: flags -> `GatewayConfig` -> a running gateway until SIGTERM.

Every flag, its type, default and help come from `GatewayConfig` (`aiqleads.settings_flags`).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

import click

from aiqleads.errors import AiqleadsError
from aiqleads.events.log import redact
from aiqleads.settings_flags import click_options
from serving.gateway.config import GatewayConfig, parse_config


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click_options(GatewayConfig)
def main(**flags: object) -> None:
    """Run one caching gateway replica (REST and gRPC) until SIGTERM or Ctrl-C."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s gateway %(levelname)s %(message)s")
    try:
        config = parse_config(flags).with_passwords()  # read from files, not argv
        if config.event_loop == "uvloop":
            import uvloop

            uvloop.run(_serve(config))
        else:
            asyncio.run(_serve(config))
    except AiqleadsError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(e.exit_code)


async def _serve(config: GatewayConfig) -> None:
    from serving.gateway.server import Gateway  # heavy (TensorFlow protos): after flag checks

    gateway = Gateway(config)
    stop = asyncio.Event()
    drain = True  # SIGTERM (a rollout) drains first; SIGINT (Ctrl-C, a whole stack's stop) not
    loop = asyncio.get_running_loop()

    def on_signal(sig: signal.Signals) -> None:
        nonlocal drain
        if not stop.is_set():
            drain = sig == signal.SIGTERM
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        await gateway.start()
    except OSError as e:
        await gateway.stop()
        raise AiqleadsError(f"cannot bind {config.host}: {e}; choose other ports") from e
    click.echo(
        f"gateway ready rest=http://{config.host}:{gateway.rest_port} "
        f"grpc={config.host}:{gateway.grpc_port} model={config.model_name} "
        f"via {','.join(config.model_servers)} redis={redact(config.redis_url)} "
        f"events={redact(config.event_store_url) if config.event_store_url else 'off'}",
        err=False,
    )
    sys.stdout.flush()
    await stop.wait()
    if drain and config.drain_seconds > 0:
        click.echo(f"gateway draining: /healthz answers 503 for {config.drain_seconds:g} s")
        sys.stdout.flush()
        await gateway.drain()
    click.echo("gateway stopping: finishing requests in flight")
    await gateway.stop()
    click.echo("gateway stopped")


if __name__ == "__main__":
    main()
