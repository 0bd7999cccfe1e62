"""The `aiqleads` command line: one group per area, each defined in `cli.commands`.

Domain errors (`AiqleadsError`) end the program with a one-line message and a non-zero exit
code, never a traceback.
"""

from __future__ import annotations

import importlib
import sys

import click

from aiqleads.errors import AiqleadsError

# (module, attribute) of each top-level command; modules are imported only when the CLI runs.
COMMANDS = (
    ("cli.commands.data", "data"),
    ("cli.commands.pipeline", "pipeline"),
    ("cli.commands.report", "report"),
    ("cli.commands.serve", "serve"),
    ("cli.commands.serve", "recommend"),
    ("cli.commands.kfp", "kfp"),
    ("cli.commands.events", "events"),
    ("cli.commands.events", "quality"),
    ("cli.commands.simulate", "simulate"),
    ("cli.commands.models", "models"),
    ("cli.commands.ab", "ab"),
    ("cli.commands.monitor", "monitor"),
    ("cli.commands.monitor", "trigger"),
    ("cli.commands.features", "features"),
)


def build_cli() -> click.Group:
    @click.group(context_settings={"help_option_names": ["-h", "--help"]})
    @click.version_option(package_name="aiqleads-recommendations")
    def cli() -> None:
        """AIQLeads Recommendations: data, pipeline, serving and deployment tools."""

    for module_name, attr in COMMANDS:
        cli.add_command(getattr(importlib.import_module(module_name), attr))
    return cli


def quiet_tensorflow_teardown(unraisable) -> None:
    """``sys.unraisablehook`` that drops TensorFlow's shutdown noise, passes the rest on.

    When the interpreter exits after a pipeline run, TensorFlow's ``AtomicFunction.__del__``
    runs after the modules it needs are gone and prints "Exception ignored in ..." with a
    ``TypeError`` traceback per traced function: harmless, but it reads like a failure at
    the end of a successful run. Anything else goes to the default hook.
    """
    where = getattr(unraisable.object, "__qualname__", "")
    if where == "AtomicFunction.__del__" and unraisable.exc_type is TypeError:
        return
    sys.__unraisablehook__(unraisable)


def main(argv: list[str] | None = None) -> int:
    sys.unraisablehook = quiet_tensorflow_teardown
    cli = build_cli()
    try:
        cli.main(args=argv, prog_name="aiqleads", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except AiqleadsError as e:
        click.echo(f"error: {e}", err=True)
        return e.exit_code
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
