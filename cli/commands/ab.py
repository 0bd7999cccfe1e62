"""`aiqleads ab report` (the canary against stable, from the event log) and `aiqleads ab watch`
(the controller that applies the decision), docs/registry.md."""

from __future__ import annotations

import math
import pathlib
import signal
import threading
import time
from typing import Any

import click

from cli.commands.json_output import echo_json
from cli.commands.options import DIRECTORY, bounded, run_dir_option

EVENT_STORE_ENV = "AIQLEADS_EVENT_STORE_URL"


def design_options(func):  # noqa: ANN001, ANN201 - a click decorator
    # Defaults are `monitoring.ab.Design`'s (None here: that module imports statsmodels,
    # which `aiqleads --help` should not wait for).
    options = [
        run_dir_option(),
        click.option(
            "--deployment-dir", type=DIRECTORY, default=None, help="The deployment folder itself."
        ),
        click.option(
            "--event-store",
            default=None,
            envvar=EVENT_STORE_ENV,
            help="Event store URL [default: the running stack's].",
        ),
        click.option(
            "--prometheus", default=None, help="Prometheus URL [default: the running stack's]."
        ),
        click.option("--alpha", type=float, default=None, help="Level of the test [0.05]."),
        click.option("--power", type=float, default=None, help="Power at --mde [0.8]."),
        click.option(
            "--mde",
            type=float,
            default=None,
            help="Relative CTR change the test is powered to detect [0.2].",
        ),
        click.option(
            "--looks",
            type=int,
            default=None,
            help="Planned looks; each tests at alpha / looks [5].",
        ),
        click.option(
            "--min-users",
            type=int,
            default=None,
            help="Users per arm before any decision [100].",
        ),
        click.option(
            "--max-p95-ratio",
            type=float,
            default=None,
            help="Latency guardrail: roll back a canary whose p95 exceeds stable's times this "
            "[1.5] ...",
        ),
        click.option(
            "--min-p95-increase-ms",
            type=float,
            default=None,
            help="... and by at least this many ms [10].",
        ),
        click.option(
            "--grid",
            "grid_seconds",
            type=float,
            default=None,
            help="Looks fall on this time grid (seconds) from the experiment's start [10].",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _setup(options: dict[str, Any]):  # noqa: ANN202
    from aiqleads.errors import ConfigError
    from monitoring.ab import Design
    from monitoring.rollout import Sources
    from serving import stack_file
    from serving.deployment import DEPLOYMENT_DIR, Deployment
    from serving.settings import DEFAULT_RUN_DIR, MODEL_NAME

    run_dir = options.pop("run_dir") or DEFAULT_RUN_DIR
    directory = options.pop("deployment_dir") or pathlib.Path(run_dir) / DEPLOYMENT_DIR
    url, prometheus = options.pop("event_store"), options.pop("prometheus")
    if url is None or prometheus is None:
        addresses = stack_file.read(pathlib.Path(run_dir))
        url = url or addresses.event_store_url
        prometheus = prometheus or addresses.prometheus_url
    try:
        design = Design(**{k: v for k, v in options.items() if v is not None})
    except ValueError as e:
        raise ConfigError(f"A/B design: {e}") from e
    return Deployment(directory, MODEL_NAME), Sources(url, prometheus), design


@click.group()
def ab() -> None:
    """A/B analysis of the canary against stable."""


@ab.command()
@design_options
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def report(as_json: bool, **options: Any) -> None:
    """Per arm: users, impressions, CTR, inquiry rate and hit rate@k with 95% intervals
    (user-clustered); the relative lift and its test; guardrails; the decision."""
    from monitoring import rollout

    deployment, sources, design = _setup(options)
    result = rollout.report(deployment, sources, design)
    if result is None:
        state = deployment.state()
        raise click.ClickException(
            f"no experiment: the canary label is not set (stable {state.stable}); "
            "aiqleads models promote VERSION --label canary starts one"
        )
    if as_json:
        echo_json(result.as_dict())
        return
    _print(result)


@ab.command()
@design_options
@click.option(
    "--interval", type=float, default=10.0, show_default=True, help="Seconds between rounds."
)
@bounded(
    "--canary-fraction",
    click.FloatRange(0.0, 1.0),
    0.1,
    "Share of users a newly pushed version gets as canary (when none is set).",
)
def watch(interval: float, canary_fraction: float, **options: Any) -> None:
    """The rollout controller: stage each new push as canary, then promote it or roll it
    back when the A/B report decides; every change goes to the deployment history."""
    from monitoring.rollout import Controller

    deployment, sources, design = _setup(options)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    def say(message: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        click.echo(f"[rollout {stamp}] {message}", err=True)

    controller = Controller(deployment, sources, design, canary_fraction, say)
    say(f"watching {deployment.directory} every {interval:g} s")
    controller.run(interval, stop.is_set)
    say("stopped")


def _fmt(e: Any) -> str:
    if e is None or math.isnan(e.value):
        return "-"
    if math.isnan(e.low):
        return f"{e.value:.4f}"
    return f"{e.value:.4f} [{e.low:.4f}, {e.high:.4f}]"


def _lift(c: Any) -> str:
    if math.isnan(c.lift.value):
        return "-"
    return f"{c.lift.value:+.1%} [{c.lift.low:+.1%}, {c.lift.high:+.1%}] p={c.p_value:.3g}"


def _print(r: Any) -> None:
    from monitoring.ab import ARMS, METRICS

    e = r.experiment
    click.echo(
        f"experiment: stable {e.stable_version} vs canary {e.canary_version} "
        f"({e.canary_fraction:.0%} of users) since "
        f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(e.start))} UTC"
    )
    header = ("arm", "version", "users", "impressions", *METRICS, "error rate", "p95 ms")
    rows = [header]
    for arm in ARMS:
        g = r.guardrails.get(arm)
        rows.append(
            (
                arm,
                str(e.stable_version if arm == "stable" else e.canary_version),
                f"{r.users.get(arm, 0):,}",
                f"{r.impressions.get(arm, 0):,}",
                *(_fmt(r.rates[arm][m]) for m in METRICS),
                "-" if g is None or g.error_rate is None else f"{g.error_rate:.2%}",
                "-" if g is None or g.p95_ms is None else f"{g.p95_ms:.1f}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    for m in METRICS:
        click.echo(f"lift {m:<13} {_lift(r.comparisons[m])}")
    d = r.design
    click.echo(
        f"test: group-sequential, {d.looks} looks at alpha/{d.looks}={d.alpha / d.looks:g} each "
        f"(overall alpha {d.alpha:g}), power {d.power:g} for a CTR change of {d.mde:.0%}; "
        f"information {r.information:.0f} of {r.information_needed:.0f}; look {r.look} taken"
    )
    needed = sum(r.users.values())
    click.echo(f"users so far (at the last look, or now): {needed:,} ({r.users})")
    click.echo(f"decision: {r.decision.upper()} - {r.reason}")
