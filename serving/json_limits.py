"""JSON request bodies with a bound on nesting: parsed, or an INVALID_ARGUMENT that says why.

Python's parser recurses once per level, so a body of ``[[[[...]]]]`` a few kilobytes long
raises `RecursionError` (a 500 that Envoy would retry on every replica); the decoders after
it recurse too. Both REST transports parse with `loads`, which turns that into a 400 and
refuses anything deeper than `MAX_DEPTH` before a decoder walks it.
"""

from __future__ import annotations

import json
from typing import Any

from serving.errors import invalid

MAX_DEPTH = 64  # a rank-32 tensor of objects still fits; TensorFlow's own limit is rank 254


def depth_within(value: Any, limit: int) -> bool:
    """Whether ``value``'s lists and objects nest at most ``limit`` deep (iterative)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return False
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return True


def loads(raw: bytes | str, max_depth: int = MAX_DEPTH, what: str = "the body") -> Any:
    """The decoded JSON of ``raw``; INVALID_ARGUMENT when it is not JSON or nests too deep."""
    try:
        value = json.loads(raw)
    except RecursionError as e:
        raise invalid(f"{what} nests JSON too deeply: at most {max_depth} levels") from e
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise invalid(f"{what} is not valid JSON: {e}") from e
    if not depth_within(value, max_depth):
        raise invalid(f"{what} nests JSON too deeply: at most {max_depth} levels")
    return value
