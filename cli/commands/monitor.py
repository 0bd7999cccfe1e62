"""`aiqleads monitor snapshot` (the dashboards as one static page) and `aiqleads trigger`
(the retraining trigger, Alertmanager's webhook receiver)."""

from __future__ import annotations

import pathlib

import click

from cli.commands.options import DIRECTORY, duration, run_dir_option
from monitoring.trigger import main as trigger_main


@click.group()
def monitor() -> None:
    """Monitoring of the running stack: dashboards from its Prometheus."""


@monitor.command()
@click.option("--out", "out_dir", type=DIRECTORY, required=True, help="Folder of the page.")
@click.option(
    "--prometheus",
    "url",
    default=None,
    help="Prometheus to query [default: the running `aiqleads serve` stack's].",
)
@run_dir_option("Run directory of the stack.")
@click.option(
    "--since",
    default="30m",
    show_default=True,
    callback=duration,
    help="Time range of the plots (90s, 15m, 2h, 7d).",
)
def snapshot(
    out_dir: pathlib.Path, url: str | None, run_dir: pathlib.Path | None, since: float
) -> None:
    """Render every dashboard panel from Prometheus (query_range) into one static HTML page."""
    from aiqleads.errors import ServiceError
    from monitoring import snapshot as snap

    if url is None:
        from serving import stack_file
        from serving.settings import DEFAULT_RUN_DIR

        url = stack_file.read(run_dir or DEFAULT_RUN_DIR).prometheus_url
        if url is None:
            raise ServiceError("the running stack has no Prometheus (--no-monitoring)")
    page = snap.render_page(url, out_dir, since_seconds=since)
    click.echo(f"wrote {page.path} ({page.panels} panels, {page.empty} without data)")


# `aiqleads trigger`: the command of `python -m monitoring.trigger`, under its CLI name.
trigger = click.Command(
    "trigger",
    callback=trigger_main.callback,
    params=trigger_main.params,
    help=trigger_main.help,
    context_settings=trigger_main.context_settings,
)
