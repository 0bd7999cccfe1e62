"""The ``main`` of a serving process run as ``python -m ...``: flags from its settings model,
one log format, and an `AiqleadsError` that ends the process with its message and code.

    @settings_command(UpdaterConfig)
    def main(**flags: object) -> None:  # its docstring is the --help text
        with process_errors("features"):
            run(parse_config(flags))
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Iterator

import click
from pydantic import BaseModel

from aiqleads.errors import AiqleadsError
from aiqleads.settings_flags import click_options

HELP_OPTIONS = {"help_option_names": ["-h", "--help"]}


def settings_command(model: type[BaseModel]) -> Callable[[Callable[..., None]], click.Command]:
    """A click command with one flag per field of ``model`` (`aiqleads.settings_flags`)."""

    def decorate(main: Callable[..., None]) -> click.Command:
        return click.command(context_settings=HELP_OPTIONS)(click_options(model)(main))

    return decorate


@contextlib.contextmanager
def process_errors(process: str) -> Iterator[None]:
    """Logs as ``<time> <process> <level> <message>``; an `AiqleadsError` raised inside is
    printed to standard error and exits with its code."""
    logging.basicConfig(
        level=logging.INFO, format=f"%(asctime)s {process} %(levelname)s %(message)s"
    )
    try:
        yield
    except AiqleadsError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(e.exit_code)
