"""Settings files and environment overrides, validated into one typed object.

The pipeline config, the KFP settings and the serving settings load the same way: a YAML
mapping, then variables ``<PREFIX><SECTION>__<KEY>`` whose values are YAML scalars, then strict
pydantic validation. Every failure is one `ConfigError` that names the file, the variable or
each bad field, so the CLI can print it as one line.
"""

from __future__ import annotations

import math
import os
import pathlib
from collections.abc import Mapping
from typing import Any, TypeVar

import pydantic
import yaml

from aiqleads.errors import ConfigError

SettingsModel = TypeVar("SettingsModel", bound=pydantic.BaseModel)


def read_yaml_mapping(path: str | pathlib.Path, what: str) -> dict[str, Any]:
    """The top-level mapping of a YAML file (an empty file is ``{}``).

    ``what`` names the kind of file in the messages, e.g. ``"pipeline config"``.
    """
    path = pathlib.Path(path)
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except OSError as e:
        raise ConfigError(f"cannot read {what} {path}: {e.strerror or e}") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"{what} {path} is not valid YAML: {e}") from e
    if not isinstance(loaded, dict):
        raise ConfigError(f"{what} {path} must be a mapping at the top level")
    return loaded


def env_overrides(environ: Mapping[str, str], prefix: str) -> dict[str, Any]:
    """A nested mapping from the variables named ``<prefix><A>__<B>...``.

    ``PREFIX_A__B=7`` gives ``{"a": {"b": 7}}``: names are lower-cased, ``__`` nests, and
    values are parsed as YAML scalars (``7`` is an int, ``true`` a bool). Other variables
    are ignored.
    """
    tree: dict[str, Any] = {}
    for key, value in sorted(environ.items()):
        if not key.startswith(prefix):
            continue
        parts = [p.lower() for p in key[len(prefix) :].split("__")]
        if not all(parts):
            raise ConfigError(f"malformed environment variable {key}")
        node = tree
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"environment variable {key} conflicts with another one")
        if isinstance(node.get(parts[-1]), dict):
            raise ConfigError(f"environment variable {key} conflicts with another one")
        node[parts[-1]] = parse_scalar(value, key)
    return tree


def parse_scalar(text: str, name: str) -> Any:
    """A value given as text, read as YAML (``7`` is an int, ``true`` a bool, ``a`` a str)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"cannot parse {name}={text!r}: {e}") from e


def as_number(value: Any, like: int | float, name: str) -> int | float:
    """``value`` (a number or numeric text, as YAML or a command line gives it) as the type of
    ``like``. ValueError naming ``name`` for booleans, text, NaN, infinity, and fractions
    where ``like`` is an int."""
    whole = isinstance(like, int)
    try:
        if isinstance(value, bool):
            raise ValueError
        number = float(value)
        if not math.isfinite(number) or (whole and not number.is_integer()):
            raise ValueError
    except (TypeError, ValueError):
        kind = "a whole number" if whole else "a finite number"
        raise ValueError(f"{name} must be {kind}, got {value!r}") from None
    return int(number) if whole else number


def merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``extra`` laid over it; nested mappings merge key by key."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def describe_validation_error(error: pydantic.ValidationError) -> str:
    """Every problem as ``dotted.field: message``, joined on one line."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
        for err in error.errors()
    )


def validate(
    model: type[SettingsModel], raw: Mapping[str, Any], what: str, source: str
) -> SettingsModel:
    """``model`` validated from ``raw``; a `ConfigError` naming ``source`` and each bad field."""
    try:
        return model.model_validate(raw)
    except pydantic.ValidationError as e:
        raise ConfigError(f"invalid {what} ({source}): {describe_validation_error(e)}") from e


def load(
    model: type[SettingsModel],
    what: str,
    path: str | pathlib.Path | None = None,
    env_prefix: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> SettingsModel:
    """Defaults < the YAML file at ``path`` (if any) < ``env_prefix`` variables (if given).

    ``environ`` defaults to ``os.environ``; tests pass their own.
    """
    raw: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        raw, source = read_yaml_mapping(path, what), str(path)
    if env_prefix is not None:
        env = env_overrides(os.environ if environ is None else environ, env_prefix)
        if env:
            raw = merge(raw, env)
            source += " + environment"
    return validate(model, raw, what, source)
