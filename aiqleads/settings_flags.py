"""Command lines derived from a settings model (`GatewayConfig`, `MonitorConfig`): one flag
per field.

A field ``some_name`` is the flag ``--some-name``; its type, default and description become
the option's, so ``--help`` shows the model's defaults and nothing is declared twice. A
boolean is ``--name/--no-name``; a tuple field takes its singular (``model_servers`` ->
``--model-server``), repeated or comma-separated. `argv` writes the same flags back (for the
launcher and the Kubernetes manifests, through `serving.command_lines`).
"""

from __future__ import annotations

import pathlib
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import click
from pydantic import BaseModel
from pydantic.fields import FieldInfo

# Tuple fields and the singular flag that gives one item per use.
REPEATED = {"model_servers": "model-server"}
_SCALARS = {int: click.INT, float: click.FLOAT, str: click.STRING}
# What the option decorators take and give back: the command's function (or command).
_Command = TypeVar("_Command", bound=Callable[..., Any])


def flag_name(field: str) -> str:
    """The flag of a field, without the dashes: ``model_timeout_ms`` -> ``model-timeout-ms``."""
    return REPEATED.get(field, field.replace("_", "-"))


def _split(ctx: click.Context, param: click.Parameter, values: Iterable[str]) -> tuple[str, ...]:
    return tuple(part.strip() for value in values for part in value.split(",") if part.strip())


def _option(name: str, field: FieldInfo) -> Callable[[_Command], _Command]:
    flag = f"--{flag_name(name)}"
    annotation = field.annotation
    args = typing.get_args(annotation)
    # click.option's keyword arguments (typed **attrs: Any there).
    kwargs: dict[str, Any] = {"help": field.description, "show_default": True}
    if field.is_required():
        kwargs["required"] = True
    else:
        kwargs["default"] = field.default
    if annotation is bool:
        return click.option(f"{flag}/--no-{flag_name(name)}", name, **kwargs)
    if typing.get_origin(annotation) is tuple:
        kwargs.update(multiple=True, type=click.STRING, callback=_split)
    elif typing.get_origin(annotation) is typing.Literal:
        kwargs["type"] = click.Choice([str(a) for a in args])
    elif typing.get_origin(annotation) in (typing.Union, types.UnionType) and pathlib.Path in args:
        kwargs["type"] = click.Path(path_type=pathlib.Path)
    elif typing.get_origin(annotation) in (typing.Union, types.UnionType) and (
        len(args) == 2 and type(None) in args and set(args) - {type(None)} <= set(_SCALARS)
    ):  # an optional scalar: absent means None
        kwargs["type"] = _SCALARS[next(a for a in args if a is not type(None))]
    elif annotation in _SCALARS:
        kwargs["type"] = _SCALARS[annotation]
    else:
        raise TypeError(f"no command-line flag for field {name!r} of type {annotation!r}")
    return click.option(flag, name, **kwargs)


def click_options(model: type[BaseModel]) -> Callable[[_Command], _Command]:
    """A decorator adding one click option per field of ``model``: the fields it declares
    itself first, then the inherited ones, each group in declaration order."""
    inherited = {n for b in model.__bases__ if issubclass(b, BaseModel) for n in b.model_fields}
    fields = sorted(model.model_fields.items(), key=lambda item: item[0] in inherited)

    def decorate(command: _Command) -> _Command:
        for name, field in reversed(fields):  # click lists the last decorator applied first
            command = _option(name, field)(command)
        return command

    return decorate


def argv(values: Mapping[str, object]) -> list[str]:
    """The flags that give ``values`` (field name -> value), in the mapping's order.

    ``None`` leaves a flag out; ``--flag=value`` is one argument (no shell quoting needed).
    """
    out: list[str] = []
    for name, value in values.items():
        flag = f"--{flag_name(name)}"
        if value is None:
            continue
        if isinstance(value, bool):
            out.append(flag if value else f"--no-{flag_name(name)}")
        elif isinstance(value, (tuple, list)):
            out.extend(f"{flag}={item}" for item in value)
        else:
            out.append(f"{flag}={value}")
    return out
