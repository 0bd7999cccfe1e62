"""Click parameter types, options and progress lines shared by the command groups.

Kept free of heavy imports (TFX, TensorFlow), so that `--help` stays fast.
"""

from __future__ import annotations

import datetime as dt
import pathlib
from collections.abc import Callable

import click

# How far the pipeline is wired; the same tuple as `pipeline.pipeline.STAGES`, spelled here
# so that the CLI does not import TFX to build its options (a test keeps the two equal).
STAGES = ("drift_check", "transform", "push")

EXISTING_FILE = click.Path(exists=True, dir_okay=False, path_type=pathlib.Path)
"""A file that must exist (a settings YAML, a compiled package)."""

DIRECTORY = click.Path(file_okay=False, path_type=pathlib.Path)
"""A directory path; the command checks it (an output directory may not exist yet)."""

FILE = click.Path(dir_okay=False, path_type=pathlib.Path)
"""A file path; the command checks it (an output file may not exist yet)."""


RUN_DIR_HELP = "Run directory of the local stack [default: runs/serve]."


def run_dir_option(help_text: str = RUN_DIR_HELP, path_type: click.Path = DIRECTORY) -> Callable:
    """``--run-dir``: the run directory of a local stack (`aiqleads serve`'s), None for the
    default one."""
    return click.option("--run-dir", type=path_type, default=None, help=help_text)


def config_option(help_text: str, path_type: click.Path = FILE) -> Callable:
    """``--config``, the ``config_file`` parameter: the command's settings YAML (None: defaults)."""
    return click.option("--config", "config_file", type=path_type, default=None, help=help_text)


def bounded(
    flag: str,
    bounds: click.ParamType,
    default: float,
    help_text: str | None = None,
    dest: str | None = None,
) -> Callable:
    """A number option within ``bounds`` (a `click.IntRange` or `click.FloatRange`) that shows
    its default in ``--help``; ``dest`` names the parameter when the flag's name does not."""
    decls = (flag, dest) if dest else (flag,)
    return click.option(*decls, type=bounds, default=default, show_default=True, help=help_text)


def verbose_option(whose: str, log: str) -> Callable:
    """``-v/--verbose``: ``whose`` output (the libraries') on the terminal too, not only in
    the ``log`` file."""
    return click.option(
        "-v", "--verbose", is_flag=True, help=f"Show {whose} output here too (always in {log})."
    )


def iso_date(_ctx: click.Context, _param: click.Parameter, value: str | None) -> dt.date | None:
    """Option callback: ``YYYY-MM-DD`` text to a date; a usage error names the bad value."""
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError as e:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from e


TOKEN_ENV = "AIQLEADS_TOKEN"  # serving.auth.TOKEN_ENV, spelled here to keep --help fast

token_option = click.option(
    "--token",
    envvar=TOKEN_ENV,
    default=None,
    help=f"Bearer token (JWT) for the front door [default: ${TOKEN_ENV}, else the development "
    "token of --run-dir].",
)
"""``--token``: the bearer token of the commands that call the front door (`resolve_token`)."""


def stage_option(help_text: str) -> Callable:
    """``--stage``: how far to wire the pipeline (``push``, the product, by default)."""
    return click.option(
        "--stage", type=click.Choice(STAGES), default="push", show_default=True, help=help_text
    )


def progress_printer(prefix: str) -> Callable[[str], None]:
    """A ``say(message)`` that writes ``<prefix> <message>`` lines to stderr.

    Progress goes to stderr so that stdout carries only the results and the summary.
    """

    def say(message: str) -> None:
        click.echo(f"{prefix} {message}", err=True)

    return say


_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


def duration(_ctx: click.Context, _param: click.Parameter, value: str | None) -> float | None:
    """Option callback: ``90``, ``90s``, ``15m``, ``2h`` or ``7d`` to seconds (at most a year)."""
    if value is None:
        return None
    text = value.strip().lower()
    unit = _DURATION_UNITS.get(text[-1:]) if text else None
    number = text[:-1] if unit else text
    try:
        seconds = float(number) * (unit or 1)
    except ValueError as e:
        raise click.BadParameter(f"{value!r} is not a duration (e.g. 90s, 15m, 2h, 7d)") from e
    if not 0 < seconds <= 366 * 86_400:
        raise click.BadParameter(f"{value!r} is out of range: use more than 0 and at most 366d")
    return seconds
