"""Every top-level package is declared once: installed by setup.py, copied into the image and
placed in a layer of the import-linter contracts (pyproject.toml), so `lint-imports` checks
its imports. A new package that is not declared fails here, with what to do."""

from __future__ import annotations

import ast
import pathlib
import re

import tomli

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _top_level_packages() -> set[str]:
    """Folders at the repository root that are Python packages (what find_packages sees)."""
    return {p.parent.name for p in ROOT.glob("*/__init__.py") if p.parent.name != "tests"}


def _importlinter() -> dict:
    return tomli.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]


def _setup_packages() -> set[str]:
    for node in ast.parse((ROOT / "setup.py").read_text()).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "PACKAGES":
            return set(ast.literal_eval(node.value))
    raise AssertionError("PACKAGES not found in setup.py")


def _layered_packages(contract: dict) -> set[str]:
    return {name for layer in contract["layers"] for name in re.split(r"[|:]", layer)} - {""}


def test_every_top_level_package_is_declared():
    packages = _top_level_packages()
    config = _importlinter()
    layers = next(c for c in config["contracts"] if c["type"] == "layers")
    declared = {
        "root_packages in pyproject.toml [tool.importlinter]": set(config["root_packages"]),
        "a layer of the layers contract in pyproject.toml": {
            name.strip() for name in _layered_packages(layers)
        },
        "PACKAGES in setup.py": _setup_packages(),
    }
    for where, names in declared.items():
        missing, stale = sorted(packages - names), sorted(names - packages)
        assert not missing, f"top-level package(s) {missing} missing from {where}: add them"
        assert not stale, f"{where} names {stale}, which are not top-level packages"
