"""`aiqleads data`: build, import, validate and describe data sets."""

from __future__ import annotations

import pathlib

import click

from cli.commands.options import DIRECTORY, iso_date, progress_printer

IMPORT_SOURCES = ("kingcounty", "barossa", "uci-restaurant")


@click.group()
def data() -> None:
    """Data sets: synthetic generation, real-data import, validation, description."""


_say = progress_printer("  ..")
_OUT_OPTION = click.option(
    "--out", required=True, type=DIRECTORY, help="Output directory (new or empty)."
)
_OVERWRITE_OPTION = click.option(
    "--overwrite", is_flag=True, help="Replace an existing data set in --out."
)


@data.command()
@click.option(
    "--preset",
    type=click.Choice(["default", "smoke"]),
    default="default",
    show_default=True,
    help="Base settings; the options below override them.",
)
@click.option("--users", type=click.IntRange(10, 2_000_000), help="Number of users.")
@click.option("--leads", type=click.IntRange(10, 1_000_000), help="Number of leads.")
@click.option("--days", type=click.IntRange(2, 3_650), help="Number of daily spans.")
@click.option("--events", type=click.IntRange(1, 50_000_000), help="About how many events.")
@click.option(
    "--seed", type=click.IntRange(0, 2**63 - 1), help="Random seed (same seed, same bytes)."
)
@click.option("--start-date", callback=iso_date, help="First span's day, YYYY-MM-DD.")
@click.option(
    "--drift",
    type=click.Choice(["price_inflation", "new_hotspot", "event_mix"]),
    help="Drift scenario applied to the last --drift-days spans.",
)
@click.option(
    "--drift-days", type=click.IntRange(1, 3_649), help="How many final spans drift (default 7)."
)
@click.option(
    "--candidates-per-view",
    type=click.IntRange(1, 200),
    help="Leads each simulated view chooses among (default 24, a results page).",
)
@_OUT_OPTION
@_OVERWRITE_OPTION
def synth(
    preset,
    users,
    leads,
    days,
    events,
    seed,
    start_date,
    drift,
    drift_days,
    candidates_per_view,
    out,
    overwrite,
) -> None:
    """Generate a synthetic data set (seeded, with hidden user preferences as ground truth)."""
    from aiqleads.data import synth as synth_mod

    config = synth_mod.preset(
        preset,
        users=users,
        leads=leads,
        days=days,
        events=events,
        seed=seed,
        start_date=start_date,
        drift=drift,
        drift_days=drift_days,
        candidates_per_view=candidates_per_view,
    )
    click.echo(
        f"synth: preset {preset}, {config.users} users, {config.leads} leads, "
        f"{config.days} days, ~{config.target_events:,} events, seed {config.seed}"
        + (f", drift {config.drift} on the last {config.drift_days} days" if config.drift else "")
    )
    summary = synth_mod.generate(config, out, overwrite=overwrite, progress=_say)
    rows = ", ".join(f"{k} {v:,}" for k, v in summary.rows.items())
    mix = ", ".join(f"{k} {v:,}" for k, v in summary.event_mix.items())
    click.echo(
        f"wrote {summary.out}: {rows}; spans {summary.spans[0]}..{summary.spans[-1]} "
        f"({len(summary.spans)}); events: {mix}; {summary.seconds:.1f} s"
    )


@data.command(name="import")
@click.argument("name", type=click.Choice(IMPORT_SOURCES))
@_OUT_OPTION
@click.option(
    "--source",
    type=DIRECTORY,
    help="Folder of the shared real data sets (default: $AIQLEADS_SHARED_DATA or "
    "<repo>/../shared/data).",
)
@click.option(
    "--seed",
    type=click.IntRange(0, 2**63 - 1),
    default=42,
    show_default=True,
    help="Seed of the simulated parts (users' behaviour, orderings).",
)
@_OVERWRITE_OPTION
def import_(name, out, source, seed, overwrite) -> None:
    """Import a real data set into the contracts and the daily span layout."""
    from aiqleads.data import adapters

    click.echo(f"import {name} -> {out}")
    summary = adapters.run(name, out, source=source, seed=seed, overwrite=overwrite, progress=_say)
    rows = ", ".join(f"{k} {v:,}" for k, v in summary.rows.items())
    click.echo(
        f"wrote {summary.out}: {rows}; {summary.span_count} spans "
        f"({summary.first_span}..{summary.last_span}); {summary.seconds:.1f} s"
    )


@data.command()
@click.argument("root", type=click.Path(path_type=pathlib.Path))
@click.option(
    "--quarantine",
    is_flag=True,
    help="Move bad rows to <file>.quarantine.csv (with a reason) and keep the good ones.",
)
def validate(root, quarantine) -> None:
    """Validate every file of a data set against the contracts (and references)."""
    from tqdm import tqdm

    from aiqleads.data.dataset_validation import validate_dataset

    bar = tqdm(desc="validate", unit=" file", leave=False)

    def tick(_name: str) -> None:
        bar.update(1)

    try:
        report = validate_dataset(root, quarantine=quarantine, progress=tick)
    finally:
        bar.close()
    for contract, (rows, bad) in report.rows_by_contract().items():
        files = sum(t.files for t in report.tables if t.contract == contract)
        suffix = f", {bad:,} quarantined" if bad else ""
        click.echo(f"  {contract:<7} {files:>5} file(s) {rows - bad:>10,} good rows{suffix}")
    for v in report.violations[:10]:
        click.echo(f"  quarantined: {v}")
    status = "valid" if not report.bad_rows else f"{report.bad_rows:,} bad rows quarantined"
    click.echo(
        f"{root}: {report.rows:,} rows in {sum(t.files for t in report.tables)} files; {status}"
    )


@data.command()
@click.argument("root", type=click.Path(path_type=pathlib.Path))
def describe(root) -> None:
    """Print a readable summary: rows, spans, dates, event mix, regions, prices."""
    from aiqleads.data.describe import describe_dataset, format_description

    click.echo(format_description(describe_dataset(root)))
