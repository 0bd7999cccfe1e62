"""JSON on stdout for the commands' ``--json`` flags.

JSON has no NaN: a value that is not a number (a rate without trials, an interval not yet
estimated) is written as null, so that any JSON reader takes the output.
"""

from __future__ import annotations

import json
import math
from typing import Any

import click


def no_nan(value: Any) -> Any:
    """``value`` with every float NaN in it (through dicts, lists and tuples) as None."""
    if isinstance(value, dict):
        return {k: no_nan(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [no_nan(v) for v in value]
    return None if isinstance(value, float) and math.isnan(value) else value


def echo_json(value: Any) -> None:
    """Print ``value`` as indented JSON, NaN as null."""
    click.echo(json.dumps(no_nan(value), indent=2))
