"""`aiqleads pipeline run`: the TFX pipeline on this machine (LocalDagRunner, SQLite MLMD).

Heavy imports (TFX, TensorFlow) happen inside the command, so `--help` stays fast.
"""

from __future__ import annotations

import datetime as dt
import pathlib

import click

from aiqleads.errors import ConfigError, DataError
from cli.commands.kfp import compile_command
from cli.commands.options import DIRECTORY, config_option, iso_date, stage_option, verbose_option


def _ensure_default_data(path: pathlib.Path) -> None:
    """Generate the default synthetic data set into ``path`` when it is not there yet."""
    if path.is_dir() and any(path.iterdir()):
        return
    from aiqleads.data import synth

    click.echo(f"no data at {path}: generating the default synthetic data set")
    summary = synth.generate(synth.preset("default"), path, progress=lambda m: click.echo(f"  {m}"))
    click.echo(f"  {sum(summary.rows.values()):,} rows in {len(summary.spans)} spans")


def _print_drift(uri: str | None) -> None:
    if not uri:
        return
    from components.drift_check.executor import read_report

    report = read_report(uri)
    if report is None:
        return
    worst = sorted(report.measurements, key=lambda m: m.value / m.threshold, reverse=True)[:3]
    click.echo(
        f"\ndrift check: {'passed' if report.passed else 'FAILED'} "
        f"({report.current_span} vs {report.previous_span}, "
        f"{len(report.measurements)} features, serving records {report.serving_records}; "
        f"run reason {report.trigger_reason or '-'})"
    )
    if report.shifts:
        shifts = ", ".join(f"{m.kind} on {m.feature}" for m in report.shifts)
        click.echo(f"  population shifts recorded (the run retrains on them): {shifts}")
    for m in worst:
        click.echo(f"  {m.kind} {m.feature}: {m.measure} {m.value:.4f} (limit {m.threshold:.4f})")


@click.group("pipeline")
def pipeline() -> None:
    """Run the TFX training pipeline (ExampleGen ... Pusher) locally."""


@pipeline.command("run")
@click.option(
    "--data",
    "data_dir",
    type=DIRECTORY,
    default=None,
    help="Data set root (leads.csv, users.csv, spans/). Default: the config's data_root; "
    "the default synthetic set is generated into runs/data/default when missing.",
)
@config_option(
    "Pipeline config YAML (see docs/pipeline.md); AIQLEADS_PIPELINE__* env vars override."
)
@click.option(
    "--as-of",
    callback=iso_date,
    default=None,
    help="Read the window ending at this span (YYYY-MM-DD) instead of the newest one.",
)
@click.option(
    "--reason",
    default="manual",
    show_default=True,
    help="Why the run starts, recorded with it (schedule, manual, drift:<alert>, "
    "quality:<alert>); an alert's reason lets population shifts through the drift check.",
)
@stage_option("Stop the wiring early (development): after the drift check or after Transform.")
@verbose_option("TensorFlow's, Beam's and TFMA's", "the run's log")
def run(
    data_dir: pathlib.Path | None,
    config_file: pathlib.Path | None,
    as_of: dt.date | None,
    reason: str,
    stage: str,
    verbose: bool,
) -> None:
    """Run the pipeline: per-component progress, then drift, evaluation and push summary."""
    from pipeline import config as config_lib

    cfg = config_lib.load_config(config_file)
    if data_dir is not None:
        if not data_dir.is_dir():
            raise DataError(f"--data {data_dir} is not a directory")
        cfg = cfg.with_overrides(data_root=str(data_dir.resolve()))
    elif cfg.data_root == config_lib.PipelineConfig.model_fields["data_root"].default:
        _ensure_default_data(cfg.data_path)
    if not cfg.data_path.is_dir():
        raise ConfigError(f"data_root {cfg.data_path} does not exist; pass --data DIR")
    if as_of is not None:
        cfg = cfg.with_overrides(as_of=as_of)
    cfg = cfg.with_overrides(trigger_reason=reason)

    from pipeline import run_log  # before TensorFlow loads: its output goes to the log

    folder = run_log.new_run_folder(cfg.path(cfg.runs_dir), cfg.name)
    click.echo(f"pipeline {cfg.name}: data {cfg.data_path}, runs under {cfg.pipeline_root}")
    click.echo(f"log: {folder / run_log.LOG_FILE} (libraries' warnings; -v shows them here)")
    with run_log.capture(folder / run_log.LOG_FILE, verbose) as captured:
        from components import evaluation_table
        from pipeline import local_runner, run_report
        from pipeline.report import for_run

        try:
            summary = local_runner.run(cfg, stage=stage, say=captured.say)
        except local_runner.PipelineRunFailed:
            captured.say(for_run.report_latest_run(cfg, folder))
            raise
        report_line = for_run.report_latest_run(cfg, folder)
        if summary.evaluation_uri:  # TFMA's reader warns: read while the log still captures
            evaluation = evaluation_table.overall_metrics(summary.evaluation_uri)
    click.echo("")
    click.echo(run_report.format_timings(summary.runs))
    _print_drift(summary.drift_report_uri)
    if summary.evaluation_uri:
        click.echo("\nevaluation (overall slice, candidate vs latest blessed model):")
        click.echo(evaluation_table.format_table(evaluation))
    if stage == "push":
        where = summary.pushed_to or "nothing pushed (not blessed)"
        click.echo(f"\npushed model: {where}")
    click.echo(
        f"\nrun {summary.run_id} finished in {summary.seconds:.0f}s; MLMD: {cfg.metadata_path}"
    )
    click.echo(report_line)


# `aiqleads pipeline compile` lives with the Kubeflow commands (cli/commands/kfp.py).
pipeline.add_command(compile_command)
