"""`aiqleads models`: the registry (list, show, history) and the labels (promote, rollback,
canary) of the served model (docs/registry.md).

Labelling commands import neither TFX nor TensorFlow: a rollback takes effect within one
poll of the model servers and one version refresh of the gateways.
"""

from __future__ import annotations

import datetime as dt
import getpass
import math
import pathlib
import socket
from typing import Any

import click

from cli.commands.json_output import echo_json
from cli.commands.options import DIRECTORY, EXISTING_FILE, duration, run_dir_option

RUN_DIR_HELP = (
    "Run directory of the local stack, whose deployment/ holds the labels [default: runs/serve]."
)
DEPLOYMENT_DIR_HELP = (
    "The deployment folder itself (models.config, canary.json, history.jsonl), e.g. a "
    "Kubernetes overlay's; overrides --run-dir."
)
PIPELINE_CONFIG_HELP = (
    "Pipeline config: its MLMD store and Pusher base path [default: the defaults]."
)
MLMD_HELP = "ML Metadata gRPC service HOST:PORT (Kubeflow Pipelines) instead of the local SQLite."


def _actor() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()}"


def _when(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def common(func):  # noqa: ANN001, ANN201 - a click decorator
    for option in reversed(
        [
            run_dir_option(RUN_DIR_HELP),
            click.option(
                "--deployment-dir", type=DIRECTORY, default=None, help=DEPLOYMENT_DIR_HELP
            ),
            click.option(
                "--pipeline-config", type=EXISTING_FILE, default=None, help=PIPELINE_CONFIG_HELP
            ),
            click.option("--mlmd", default=None, help=MLMD_HELP),
            click.option(
                "--model-base-path",
                type=DIRECTORY,
                default=None,
                help="Where the Pusher writes versions [default: the deployment's, else the "
                "pipeline config's].",
            ),
        ]
    ):
        func = option(func)
    return func


class _Context:
    def __init__(
        self,
        run_dir: pathlib.Path | None,
        deployment_dir: pathlib.Path | None,
        pipeline_config: pathlib.Path | None,
        mlmd: str | None,
        model_base_path: pathlib.Path | None,
    ) -> None:
        from serving.deployment import DEPLOYMENT_DIR, Deployment
        from serving.settings import DEFAULT_RUN_DIR, MODEL_NAME

        self.pipeline_config = pipeline_config
        self.mlmd = mlmd
        self.run_dir = run_dir or DEFAULT_RUN_DIR
        directory = deployment_dir or self.run_dir / DEPLOYMENT_DIR
        self.deployment = Deployment(directory, MODEL_NAME)
        self._base = model_base_path

    def _pipeline(self):  # noqa: ANN202 - pipeline.config is imported late (pydantic only)
        from pipeline.config import load_config

        return load_config(self.pipeline_config)

    @property
    def base_path(self) -> pathlib.Path:
        if self._base is not None:
            return self._base
        bootstrap = self.deployment.bootstrap_base_path()
        if bootstrap is not None:
            return pathlib.Path(bootstrap)
        if self.deployment.exists():
            return pathlib.Path(self.deployment.state().base_path)
        return self._pipeline().serving_model_path

    def registry(self, need_store: bool = True):  # noqa: ANN201
        from pipeline.registry import Registry, connect

        store = None
        if self.mlmd:
            store = connect(self.mlmd)
        else:
            path = self._metadata_path()
            if path.is_file() or need_store:
                store = connect(path)
        return Registry(store, self.base_path, self.deployment)

    def _metadata_path(self) -> pathlib.Path:
        """The pipeline config's MLMD file; without a config, where a local run keeps it
        beside its Pusher destination (<runs>/serving_models/<model> and
        <runs>/metadata/<pipeline>.sqlite), when the default one is absent."""
        cfg = self._pipeline()
        if self.pipeline_config is not None or cfg.metadata_path.is_file():
            return cfg.metadata_path
        beside = self.base_path.parent.parent / cfg.metadata_path.parent.name
        return beside / cfg.metadata_path.name


@click.group()
def models() -> None:
    """Model versions, their labels (stable, canary) and the deployment history."""


@models.command("list")
@common
@click.option("--since", default="24h", show_default=True, callback=duration, help="Online window.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_(since: float, as_json: bool, **where: Any) -> None:
    """Every version: labels, window, blessing, offline NDCG/AUC, online CTR."""
    ctx = _Context(**where)
    versions = ctx.registry(need_store=False).versions()
    online = _online(ctx, since)
    if as_json:
        rows = [{**v.as_dict(), "online": online.get(v.version, [])} for v in versions]
        echo_json(rows)
        return
    header = (
        "version",
        "labels",
        "pushed",
        "window",
        "blessed",
        "ndcg@10",
        "auc",
        "in service",
        "online CTR",
    )
    table: list[tuple[str, ...]] = [header]
    for v in versions:
        ctr = [r for r in online.get(v.version, []) if r["impressions"]]
        table.append(
            (
                str(v.version),
                ",".join(v.labels) or "-",
                _when(v.pushed_at) if v.registered else "not pushed by the pipeline",
                "..".join(v.window) if v.window else "-",
                {True: "yes", False: "no", None: "-"}[v.blessed],
                _num(v.offline_metrics.get("ndcg@10")),
                _num(v.offline_metrics.get("engagement_auc")),
                _when(v.in_service_since),
                " ".join(f"{r['variant']} {_num(r['ctr']['value'])}" for r in ctr) or "-",
            )
        )
    _print_table(table)


@models.command()
@common
@click.argument("version", type=int)
@click.option("--since", default="24h", show_default=True, callback=duration, help="Online window.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show(version: int, since: float, as_json: bool, **where: Any) -> None:
    """One version: window, data fingerprint, code version, offline metrics (and its
    baseline's), blessing, push time, labels, in service since, online metrics."""
    ctx = _Context(**where)
    entry = ctx.registry(need_store=False).version(version)
    online = _online(ctx, since).get(version, [])
    data = {**entry.as_dict(), "online": online}
    if as_json:
        echo_json(data)
        return
    click.echo(f"version          {entry.version}")
    click.echo(f"labels           {', '.join(entry.labels) or '-'}")
    click.echo(
        f"pushed           {_when(entry.pushed_at) if entry.registered else 'not by the pipeline'}"
    )
    click.echo(f"destination      {entry.destination or '-'}")
    click.echo(f"training window  {'..'.join(entry.window) if entry.window else '-'}")
    click.echo(f"data fingerprint {entry.data_fingerprint or '-'}")
    click.echo(f"code version     {entry.code_version or '-'}")
    click.echo(f"blessed          {entry.blessed if entry.blessed is not None else '-'}")
    click.echo(f"in service since {_when(entry.in_service_since)}")
    if entry.offline_metrics:
        click.echo("offline metrics (TFMA, eval split; baseline = the latest blessed model then):")
        for name in sorted(entry.offline_metrics):
            base = entry.baseline_metrics.get(name)
            click.echo(f"  {name:<18} {_num(entry.offline_metrics[name])}  baseline {_num(base)}")
    for row in online:
        click.echo(
            f"online {row['variant']:<7} impressions {row['impressions']:,}  users {row['users']:,}  "
            f"CTR {_num(row['ctr']['value'])}  inquiry {_num(row['inquiry_rate']['value'])}  "
            f"hit rate@k {_num(row['hit_rate']['value'])}"
        )


@models.command()
@common
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines.")
def history(as_json: bool, **where: Any) -> None:
    """Every label change, oldest first: time, actor, action, labels after it, reason."""
    ctx = _Context(**where)
    for change in ctx.deployment.history():
        if as_json:
            click.echo(change.to_json())
            continue
        canary = "-" if change.canary is None else str(change.canary)
        click.echo(
            f"{_when(change.time)}  {change.action:<15} stable {change.stable}  canary {canary} "
            f"({change.canary_fraction:.0%})  by {change.actor}: {change.reason}"
        )


@models.command()
@common
@click.argument("version", type=int)
@click.option("--label", type=click.Choice(["stable", "canary"]), required=True)
@click.option("--reason", default="", help="Why (recorded in the history).")
@click.option(
    "--force",
    is_flag=True,
    help="Label a version the pipeline did not push (a baseline copied by hand); never one "
    "the Evaluator refused.",
)
def promote(version: int, label: str, reason: str, force: bool, **where: Any) -> None:
    """Point the label at VERSION (promoting the canary to stable drops the canary label)."""
    ctx = _Context(**where)
    ctx.registry(need_store=not force).check_promotable(version, force=force)
    why = reason or f"manual promote to {label}"
    if force:
        why += " (forced: not pushed by the pipeline)"
    change = ctx.deployment.promote(version, label, _actor(), why)
    _done(change, ctx)


@models.command()
@common
@click.option("--canary", "canary_only", is_flag=True, help="Drop only the canary label.")
@click.option("--reason", default="", help="Why (recorded in the history).")
def rollback(canary_only: bool, reason: str, **where: Any) -> None:
    """Send stable back to the previous stable version (and drop the canary), or with
    --canary drop the canary label only."""
    ctx = _Context(**where)
    if canary_only:
        change = ctx.deployment.rollback_canary(_actor(), reason or "manual canary rollback")
    else:
        change = ctx.deployment.rollback(_actor(), reason or "manual rollback")
    _done(change, ctx)


@models.command()
@common
@click.option("--fraction", type=float, required=True, help="Share of users (0..1) on the canary.")
@click.option("--reason", default="", help="Why (recorded in the history).")
def canary(fraction: float, reason: str, **where: Any) -> None:
    """Send FRACTION of the users (by hash of their id) to the canary label."""
    ctx = _Context(**where)
    change = ctx.deployment.set_canary_fraction(
        fraction, _actor(), reason or f"canary fraction {fraction:g}"
    )
    _done(change, ctx)


def _done(change, ctx: _Context) -> None:  # noqa: ANN001
    canary = "-" if change.canary is None else str(change.canary)
    click.echo(
        f"{change.action}: stable {change.stable}, canary {canary} for "
        f"{change.canary_fraction:.0%} of users; written to {ctx.deployment.config_path} at "
        f"{_when(change.time)} (the model servers re-read it within their poll interval)"
    )


def _online(ctx: _Context, since: float) -> dict[int, list[dict]]:
    """Online quality rows per version from the running stack's event log ({} without one)."""
    from aiqleads.errors import AiqleadsError
    from aiqleads.events.quality import read_log, report_rows
    from serving import stack_file

    try:
        url = stack_file.read(ctx.run_dir).event_store_url
        quality = read_log(url, since, timeout_seconds=2.0)
    except AiqleadsError:
        return {}
    out: dict[int, list[dict]] = {}
    for row in report_rows(quality):
        if row["model_version"] is not None:
            out.setdefault(int(row["model_version"]), []).append(row)
    return out


def _num(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.4f}"


def _print_table(table: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
