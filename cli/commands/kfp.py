"""`aiqleads kfp upload|run|schedule` (Kubeflow Pipelines 2.x) and `aiqleads pipeline compile`.

Settings: ``--kfp-config FILE`` (YAML, ``pipeline/kfp_client.KfpSettings``) and
``AIQLEADS_KFP__<KEY>`` environment variables, for example ``AIQLEADS_KFP__HOST``.
"""

from __future__ import annotations

import datetime as dt
import pathlib
import time
from collections.abc import Callable

import click

from cli.commands.options import (
    EXISTING_FILE,
    FILE,
    config_option,
    progress_printer,
    stage_option,
)

KFP_CONFIG_OPTION = click.option(
    "--kfp-config",
    type=EXISTING_FILE,
    default=None,
    envvar="AIQLEADS_KFP_CONFIG",
    help="KFP settings YAML (host, image, pipeline root, schedule); env AIQLEADS_KFP__* overrides.",
)
_say = progress_printer("[kfp]")
_say_compile = progress_printer("[compile]")


def _package_option(help_text: str, required: bool = False) -> Callable:
    """``--package``: a compiled pipeline package (`aiqleads pipeline compile` writes one)."""
    return click.option("--package", type=EXISTING_FILE, required=required, help=help_text)


def _settings(path: pathlib.Path | None):
    from pipeline.kfp_client import load_kfp_settings

    return load_kfp_settings(path)


def _client(path: pathlib.Path | None):
    from pipeline.kfp_client import KfpClient

    settings = _settings(path)
    if settings.host:
        _say(f"connecting to {settings.host}")
    return KfpClient(settings)


def _version_name() -> str:
    return f"v{dt.datetime.now(dt.timezone.utc):%Y%m%d-%H%M%S}"


@click.command("compile")
@config_option(
    "Pipeline config YAML (pipeline/config.py); its beam_args go into the package.", EXISTING_FILE
)
@KFP_CONFIG_OPTION
@click.option(
    "--out",
    type=FILE,
    default=None,
    help="Where to write the KFP package (.yaml) [default: runs/kfp/aiqleads_pipeline.yaml].",
)
@stage_option("How far to wire the pipeline (push is the product; shorter ones for development).")
def compile_command(
    config_file: pathlib.Path | None,
    kfp_config: pathlib.Path | None,
    out: pathlib.Path | None,
    stage: str,
) -> None:
    """Compile the pipeline into a Kubeflow Pipelines 2.x package (KubeflowV2DagRunner)."""
    from pipeline.config import REPO_ROOT, load_config

    config = load_config(config_file)
    settings = _settings(kfp_config)
    _say_compile("loading TFX and building the pipeline (about a minute)")
    started = time.monotonic()
    from pipeline.kubeflow_v2_runner import DEFAULT_PACKAGE, compile_pipeline

    compiled = compile_pipeline(config, settings, out or REPO_ROOT / DEFAULT_PACKAGE, stage=stage)
    _say_compile(f"{len(compiled.tasks)} steps: {', '.join(compiled.tasks)}")
    click.echo(
        f"wrote {compiled.path} in {time.monotonic() - started:.0f}s\n"
        f"  pipeline   {compiled.pipeline_name}\n"
        f"  image      {compiled.image}\n"
        f"  root       {compiled.pipeline_root}\n"
        f"  beam args  {' '.join(compiled.beam_args) or '(none)'}\n"
        f"next: aiqleads kfp upload --package {compiled.path}"
    )


@click.group("kfp")
def kfp() -> None:
    """Kubeflow Pipelines: upload the compiled pipeline, start runs, schedule daily retraining."""


@kfp.command()
@KFP_CONFIG_OPTION
@_package_option("The package written by `aiqleads pipeline compile`.", required=True)
@click.option(
    "--version",
    "version_name",
    default=None,
    help="Version name shown in the KFP UI [default: v<UTC timestamp>].",
)
def upload(
    kfp_config: pathlib.Path | None, package: pathlib.Path, version_name: str | None
) -> None:
    """Upload the package as a new pipeline version (the pipeline on first upload)."""
    client = _client(kfp_config)
    version_name = version_name or _version_name()
    if not 0 < len(version_name) <= 128:
        raise click.BadParameter("1-128 characters", param_hint="--version")
    uploaded = client.upload(package, version_name)
    if uploaded.created_pipeline:
        click.echo(f"created pipeline {client.settings.pipeline_name} ({uploaded.pipeline_id})")
    else:
        click.echo(
            f"uploaded version {version_name} ({uploaded.version_id}) "
            f"of pipeline {client.settings.pipeline_name} ({uploaded.pipeline_id})"
        )


@kfp.command()
@KFP_CONFIG_OPTION
@click.option(
    "--reason",
    required=True,
    help="Why this run starts (recorded as the run's trigger_reason), e.g. 'drift alert'.",
)
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="A pipeline parameter (repeatable); values are YAML scalars.",
)
@click.option("--version-id", default=None, help="Pipeline version to run [default: latest].")
@_package_option("Upload this package as a new version first, then run it (the daily job does).")
def run(
    kfp_config: pathlib.Path | None,
    reason: str,
    params: tuple[str, ...],
    version_id: str | None,
    package: pathlib.Path | None,
) -> None:
    """Start one run now (manual, or from the retraining trigger with its reason)."""
    from pipeline.kfp_client import check_reason, parse_parameters

    if package and version_id:
        raise click.UsageError("--package uploads a new version: do not pass --version-id too")
    reason = check_reason(reason)
    parsed = parse_parameters(params)
    client = _client(kfp_config)
    if package:
        uploaded = client.upload(package, _version_name())
        version_id = uploaded.version_id or client.latest_version(uploaded.pipeline_id)
        _say(f"uploaded {package.name} as version {version_id}")
    run_id = client.run(reason, params=parsed, version_id=version_id)
    click.echo(f"started run {run_id} of {client.settings.pipeline_name} (reason: {reason})")


@kfp.command()
@KFP_CONFIG_OPTION
@click.option("--version-id", default=None, help="Pipeline version to schedule [default: latest].")
@click.option("--replace", is_flag=True, help="Replace an existing recurring run of that name.")
def schedule(kfp_config: pathlib.Path | None, version_id: str | None, replace: bool) -> None:
    """Create the daily retraining recurring run (cron from the KFP settings)."""
    client = _client(kfp_config)
    recurring_id, replaced = client.schedule(version_id=version_id, replace=replace)
    s = client.settings
    click.echo(
        f"scheduled {s.schedule_name} ({recurring_id}): cron {s.schedule_cron!r} UTC, "
        f"at most {s.max_concurrency} run(s) in flight"
        + (f"; replaced {replaced}" if replaced else "")
    )
