"""Fingerprints of the project code each component runs, so that TFX's cache notices a change.

TFX keys a cached execution on its inputs and execution properties, not on the Python behind
``preprocessing_fn`` or ``run_fn``. ``create_pipeline`` therefore puts a digest of the sources
a component executes into its properties: edit the Transform or the Trainer code and the next
run recomputes that component (and what follows), while a rerun of unchanged code on
unchanged data still comes from the cache.
"""

from __future__ import annotations

import hashlib
import pathlib

REPO = pathlib.Path(__file__).resolve().parents[1]
CODE_FINGERPRINT_KEY = "code_fingerprint"  # in Transform's and the Trainer's custom_config

# The project sources behind each component (files or folders, relative to the checkout).
EXAMPLE_GEN_SOURCES = (
    "components/example_gen",
    "aiqleads/contracts.py",
    "aiqleads/layout.py",
    "aiqleads/data/validate.py",
    "aiqleads/features",
    "transforms/features.py",
)
TRANSFORM_SOURCES = ("transforms",)
TRAINER_SOURCES = (
    "components/trainer",
    "components/example_gen",
    "transforms",
    "aiqleads/features",
    "aiqleads/tf_serving_warmup.py",
)


def source_files(sources: tuple[str, ...], root: pathlib.Path | None = None) -> list[pathlib.Path]:
    """The ``*.py`` files of ``sources`` under ``root`` (default: this checkout), sorted; a
    missing entry is an error."""
    root = REPO if root is None else root
    files: list[pathlib.Path] = []
    for entry in sources:
        path = root / entry
        if path.is_dir():
            files += sorted(p for p in path.rglob("*.py") if "__pycache__" not in p.parts)
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"code fingerprint: {path} does not exist")
    return sorted(set(files))


def fingerprint(sources: tuple[str, ...], root: pathlib.Path | None = None) -> str:
    """SHA-256 (first 16 hex digits) over the names and contents of ``sources``' files."""
    root = REPO if root is None else root
    digest = hashlib.sha256()
    for path in source_files(sources, root):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]
