"""`aiqleads events ingest` (the event log into daily spans) and `aiqleads quality report`."""

from __future__ import annotations

import math
import pathlib
import time

import click

from cli.commands.json_output import echo_json
from cli.commands.options import DIRECTORY, duration, progress_printer, run_dir_option

EVENT_STORE_ENV = "AIQLEADS_EVENT_STORE_URL"
EVENT_STORE_HELP = (
    f"Event store URL (or the {EVENT_STORE_ENV} variable, which keeps a password out of the "
    "process list) [default: the running `aiqleads serve` stack's]."
)


def _event_store_url(url: str | None, run_dir: pathlib.Path | None) -> str:
    if url:
        return url
    from serving import stack_file
    from serving.settings import DEFAULT_RUN_DIR

    return stack_file.read(run_dir or DEFAULT_RUN_DIR).event_store_url


@click.group()
def events() -> None:
    """The event log: impressions and feedback the serving stack records."""


@events.command()
@click.option("--data", "data_dir", type=DIRECTORY, required=True, help="Data set to add to.")
@click.option("--event-store", "url", default=None, envvar=EVENT_STORE_ENV, help=EVENT_STORE_HELP)
@run_dir_option()
@click.option(
    "--lateness",
    default="2d",
    show_default=True,
    callback=duration,
    help="How long after its UTC day ends an event may still land on it.",
)
@click.option(
    "--retention",
    default="2d",
    show_default=True,
    callback=duration,
    help="How long ingested entries stay in the log (for the monitor and reports).",
)
def ingest(
    data_dir: pathlib.Path,
    url: str | None,
    run_dir: pathlib.Path | None,
    lateness: float,
    retention: float,
) -> None:
    """Turn the event log into span folders (events.csv per UTC day), exactly once."""
    from aiqleads.events.ingest import ingest as run_ingest
    from aiqleads.events.log import EventLog, redact

    url = _event_store_url(url, run_dir)
    say = progress_printer("[ingest]")
    say(f"reading {redact(url)} into {data_dir}")
    last = [0.0]

    def progress(summary) -> None:
        if time.monotonic() - last[0] >= 2.0:
            last[0] = time.monotonic()
            say(
                f"{summary.impressions:,} impressions, {summary.feedback_read:,} feedback read, "
                f"{summary.written:,} written"
            )

    log = EventLog(url)
    try:
        summary = run_ingest(
            data_dir, log, lateness_seconds=lateness, retention_seconds=retention, progress=progress
        )
    finally:
        log.close()
    for line in summary.lines():
        click.echo(line)


@click.group()
def quality() -> None:
    """Online quality of the served models, from the event log."""


def _fmt(rate: dict) -> str:
    if rate["n"] == 0 or math.isnan(rate["value"]):
        return "-"
    return f"{rate['value']:.3f} [{rate['low']:.3f}, {rate['high']:.3f}]"


@quality.command()
@click.option(
    "--since",
    default="1h",
    show_default=True,
    callback=duration,
    help="How far back to read (90s, 15m, 2h, 7d).",
)
@click.option(
    "--window",
    default="30m",
    show_default=True,
    callback=duration,
    help="Attribution window: feedback later than this after its answer does not count.",
)
@click.option("--event-store", "url", default=None, envvar=EVENT_STORE_ENV, help=EVENT_STORE_HELP)
@run_dir_option()
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def report(
    since: float, window: float, url: str | None, run_dir: pathlib.Path | None, as_json: bool
) -> None:
    """Impressions, users, CTR, inquiry, purchase and hit rate@k, precision@k per model
    version and variant, with 95% confidence intervals (Wilson)."""
    from aiqleads.events.quality import read_log, report_rows

    q = read_log(_event_store_url(url, run_dir), since, window_seconds=window)
    rows = report_rows(q)
    if as_json:
        echo_json(rows)
        return
    header = ("version", "variant", "impressions", "users", "CTR", "inquiry", "purchase")
    header += ("hit rate@k", "precision@k")
    table = [header]
    for r in rows:
        table.append(
            (
                "all" if r["model_version"] is None else str(r["model_version"]),
                r["variant"],
                f"{r['impressions']:,}",
                f"{r['users']:,}",
                *(_fmt(r[k]) for k in ("ctr", "inquiry_rate", "purchase_rate")),
                _fmt(r["hit_rate"]),
                _fmt(r["precision"]),
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
    click.echo(
        f"last {since / 3600:g} h, attribution window {window / 60:g} min; 95% Wilson "
        f"intervals; {q.unmatched_feedback + q.outside_window:,} feedback not attributed"
    )
