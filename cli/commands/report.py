"""`aiqleads report`: one pipeline run's self-contained HTML report (pipeline.report).

Heavy imports (TensorFlow, TFMA) happen inside the command, after the output capture starts,
so `--help` stays fast and their warnings go to the log file.
"""

from __future__ import annotations

import pathlib

import click

from cli.commands.options import DIRECTORY, config_option, verbose_option

REPORT_LOG = "report.log"  # the libraries' output while the report is built, in --out


@click.command("report")
@config_option(
    "Pipeline config YAML (as for `aiqleads pipeline run`): where MLMD and the runs are."
)
@click.option(
    "--run",
    "run",
    default="latest",
    show_default=True,
    help="Which run: its id, as `aiqleads pipeline run` prints it, or latest.",
)
@click.option(
    "--out",
    "out_dir",
    type=DIRECTORY,
    required=True,
    help="Folder to write report.html into (created when missing).",
)
@verbose_option("TensorFlow's and the libraries'", f"--out/{REPORT_LOG}")
def report(
    config_file: pathlib.Path | None, run: str, out_dir: pathlib.Path, verbose: bool
) -> None:
    """Write the HTML report of one pipeline run: data, drift, model, plots, geography, cost.

    The file has everything inline (no server, no network): open it in a browser.
    """
    from pipeline import config as config_lib
    from pipeline import run_log

    cfg = config_lib.load_config(config_file)
    out_dir.mkdir(parents=True, exist_ok=True)
    with run_log.capture(out_dir / REPORT_LOG, verbose=verbose) as captured:
        from pipeline.report import render

        rendered = render.write_report(cfg, out_dir, run, say=captured.say)
    click.echo(f"report of run {rendered.run_id}: {rendered.path} ({rendered.seconds:.0f}s)")
