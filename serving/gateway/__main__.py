"""`python -m serving.gateway`: flags -> `GatewayConfig` -> a running gateway until SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import pathlib
import signal
import sys

import click

from aiqleads.errors import AiqleadsError
from serving.gateway.config import parse_config


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--rest-port", type=int, default=8500, show_default=True, help="REST port; 0 = free.")
@click.option("--grpc-port", type=int, default=8501, show_default=True, help="gRPC port; 0 = free.")
@click.option("--redis-url", default="redis://127.0.0.1:6379/0", show_default=True)
@click.option(
    "--model-server",
    "model_servers",
    multiple=True,
    required=True,
    help="HOST:PORT of a model server's gRPC API (repeat, or comma-separate, for several).",
)
@click.option("--model-name", default="lead_recommender", show_default=True)
@click.option("--cache-ttl-seconds", type=int, default=300, show_default=True)
@click.option(
    "--local-cache-entries",
    type=int,
    default=10_000,
    show_default=True,
    help="Answers kept in process in front of Redis (0 = off).",
)
@click.option(
    "--local-cache-ttl-seconds",
    type=float,
    default=10.0,
    show_default=True,
    help="How long an answer stays in the in-process cache (at most --cache-ttl-seconds).",
)
@click.option(
    "--log-dir",
    type=click.Path(path_type=pathlib.Path),
    default=None,
    help="Directory of the request and feedback logs (none if not given).",
)
@click.option(
    "--canary-fraction",
    type=float,
    default=0.0,
    show_default=True,
    help="Share of users (by hash of user_id) sent to the 'canary' label.",
)
@click.option(
    "--request-timeout-ms",
    type=int,
    default=500,
    show_default=True,
    help="Deadline of each model server call.",
)
@click.option(
    "--version-refresh-seconds",
    type=float,
    default=2.0,
    show_default=True,
    help="How often to ask the model servers for versions and labels.",
)
@click.option(
    "--online-features/--no-online-features",
    default=False,
    show_default=True,
    help="Fill a missing location from the user's Redis feature hash.",
)
@click.option(
    "--event-loop",
    type=click.Choice(["uvloop", "asyncio"]),
    default="uvloop",
    show_default=True,
    help="uvloop (libuv) costs less CPU per request than the standard asyncio loop.",
)
def main(event_loop: str, **flags: object) -> None:
    """Run one caching gateway replica (REST and gRPC) until SIGTERM or Ctrl-C."""
    servers = tuple(
        part.strip() for value in flags.pop("model_servers") for part in str(value).split(",")
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s gateway %(levelname)s %(message)s")
    try:
        config = parse_config({**flags, "model_servers": tuple(p for p in servers if p)})
        if event_loop == "uvloop":
            import uvloop

            uvloop.run(_serve(config))
        else:
            asyncio.run(_serve(config))
    except AiqleadsError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(e.exit_code)


async def _serve(config) -> None:
    from serving.gateway.app import Gateway  # heavy (TensorFlow protos): after flag checks

    gateway = Gateway(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await gateway.start()
    except OSError as e:
        await gateway.stop()
        raise AiqleadsError(f"cannot bind {config.host}: {e}; choose other ports") from e
    click.echo(
        f"gateway ready rest=http://{config.host}:{gateway.rest_port} "
        f"grpc={config.host}:{gateway.grpc_port} model={config.model_name} "
        f"via {','.join(config.model_servers)} redis={config.redis_url}",
        err=False,
    )
    sys.stdout.flush()
    await stop.wait()
    click.echo("gateway stopping: draining requests in flight")
    await gateway.stop()
    click.echo("gateway stopped")


if __name__ == "__main__":
    main()
