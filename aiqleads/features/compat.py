"""The versioning rules, checked against a committed golden of the view definitions.

The golden (``tests/features/golden/feature_views.json``) records every view version ever
defined: names, types, defaults, owner, TTL. `check` compares the definitions with it:

- a version in the golden that is still defined must keep every feature with its type and
  default (removing or retyping one needs a new version); added features are compatible;
- a version may leave the definitions only once a newer version of its view exists;
- versions of a view are consecutive from 1.

`merge` gives the golden after a change, keeping retired versions, and refuses an
incompatible change; `tests/features/regenerate_golden.py` writes it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from aiqleads.features.definitions import FeatureView

GoldenEntry = dict[str, Any]


def describe(view: FeatureView) -> GoldenEntry:
    """A view version as the golden records it (JSON-ready)."""
    return {
        "name": view.name,
        "version": view.version,
        "entity": view.entity.name,
        "join_key": view.entity.join_key,
        "owner": view.owner,
        "ttl_seconds": view.ttl_seconds,
        "features": [
            {"name": f.name, "type": f.dtype.value, "default": f.default} for f in view.features
        ],
    }


def _ref(entry: GoldenEntry) -> str:
    return f"{entry['name']}:{entry['version']}"


def check(golden: Iterable[GoldenEntry], views: Iterable[FeatureView]) -> list[str]:
    """Every breach of the versioning rules, as a message saying what to do."""
    current = {v.ref: describe(v) for v in views}
    problems = []
    latest: dict[str, int] = {}
    for entry in current.values():
        latest[entry["name"]] = max(latest.get(entry["name"], 0), entry["version"])
    for old in golden:
        ref = _ref(old)
        new = current.get(ref)
        if new is None:
            if latest.get(old["name"], 0) <= old["version"]:
                problems.append(
                    f"feature view {ref} was removed without a newer version: keep it, or "
                    f"define {old['name']}:{old['version'] + 1}"
                )
            continue
        if new["entity"] != old["entity"] or new["join_key"] != old["join_key"]:
            problems.append(
                f"feature view {ref} changed its entity: define {old['name']}:"
                f"{latest[old['name']] + 1} instead"
            )
        now = {f["name"]: f for f in new["features"]}
        for feature in old["features"]:
            mine = now.get(feature["name"])
            if mine is None:
                what = "removed"
            elif mine["type"] != feature["type"]:
                what = f"retyped from {feature['type']} to {mine['type']}"
            elif mine["default"] != feature["default"]:
                what = f"given another default ({feature['default']!r} -> {mine['default']!r})"
            else:
                continue
            problems.append(
                f"feature {feature['name']!r} of {ref} was {what}: that is incompatible; "
                f"define {old['name']}:{latest[old['name']] + 1} with the change and keep {ref}"
            )
    by_name: dict[str, list[int]] = {}
    for entry in current.values():
        by_name.setdefault(entry["name"], []).append(entry["version"])
    retired = {_ref(e) for e in golden} - set(current)
    for name, versions in by_name.items():
        gone = [int(r.rsplit(":", 1)[1]) for r in retired if r.rsplit(":", 1)[0] == name]
        every = sorted(versions + gone)
        if every != list(range(1, len(every) + 1)):
            problems.append(f"versions of {name} are {every}: number them 1, 2, 3, ...")
    return problems


def merge(golden: Iterable[GoldenEntry], views: Iterable[FeatureView]) -> list[GoldenEntry]:
    """The golden after a change: current definitions plus retired versions, sorted; a
    ValueError listing the problems when the change breaks the rules."""
    golden = list(golden)
    views = list(views)
    problems = check(golden, views)
    if problems:
        raise ValueError("incompatible feature view change:\n  " + "\n  ".join(problems))
    entries = {_ref(e): e for e in golden}
    entries.update({v.ref: describe(v) for v in views})
    return sorted(entries.values(), key=lambda e: (e["name"], e["version"]))


def dumps(entries: list[GoldenEntry]) -> str:
    return json.dumps(entries, indent=2, sort_keys=True) + "\n"


def loads(text: str) -> list[GoldenEntry]:
    data = json.loads(text)
    if not isinstance(data, list):
        raise ValueError("the feature view golden must be a JSON list of view versions")
    return data
