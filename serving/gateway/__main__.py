"""`python -m serving.gateway`: flags -> `GatewayConfig` -> a running gateway until SIGTERM.

Every flag, its type, default and help come from `GatewayConfig` (`aiqleads.settings_flags`).
"""

from __future__ import annotations

import asyncio
import signal
import sys

import click

from aiqleads.errors import AiqleadsError
from aiqleads.events.log import redact
from serving.gateway.config import GatewayConfig, parse_config
from serving.main_command import process_errors, settings_command


@settings_command(GatewayConfig)
def main(**flags: object) -> None:
    """Run one caching gateway replica (REST and gRPC) until SIGTERM or Ctrl-C."""
    with process_errors("gateway"):
        config = parse_config(flags).with_passwords()  # read from files, not argv
        if config.event_loop == "uvloop":
            import uvloop

            uvloop.run(_serve(config))
        else:
            asyncio.run(_serve(config))


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
