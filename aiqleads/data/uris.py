"""A data set's paths as strings that may be URLs.

A local folder is read through the operating system; a ``gs://``, ``s3://`` or ``ram://``
one through TensorFlow's file systems (``tf.io.gfile``, imported only for such a path), so
the same readers serve a mounted volume and an object store.
"""

from __future__ import annotations

import datetime as dt
import os
import pathlib
from typing import IO, Any

from aiqleads import contracts, layout


def is_url(path: str | pathlib.Path) -> bool:
    return "://" in str(path)


def _gfile() -> Any:
    import tensorflow as tf

    return tf.io.gfile


def join(root: str | pathlib.Path, *parts: str) -> str:
    """A path under ``root``: joined by "/" for URLs, by pathlib for local ones (so a local
    file is named in messages as everywhere else)."""
    if is_url(root):
        return "/".join([str(root).rstrip("/"), *parts])
    return str(pathlib.Path(root, *parts))


def table_uri(
    root: str | pathlib.Path, contract: contracts.Contract, day: dt.date | None = None
) -> str:
    """Where a contract's file lives (`aiqleads.layout.table_path`), as a string path."""
    if day is None:
        return join(root, contract.file_name)
    return join(root, layout.SPANS_DIR, layout.span_name(day), contract.file_name)


def isdir(path: str | pathlib.Path) -> bool:
    return bool(_gfile().isdir(str(path))) if is_url(path) else os.path.isdir(path)


def isfile(path: str | pathlib.Path) -> bool:
    if is_url(path):
        gfile = _gfile()
        return bool(gfile.exists(str(path))) and not gfile.isdir(str(path))
    return os.path.isfile(path)


def listdir(path: str | pathlib.Path) -> list[str]:
    """The names in a folder (without a trailing "/")."""
    names = _gfile().listdir(str(path)) if is_url(path) else os.listdir(path)
    return [str(name).rstrip("/") for name in names]


def open_text(path: str | pathlib.Path) -> IO[str]:
    if is_url(path):
        handle: IO[str] = _gfile().GFile(str(path), "r")
        return handle
    return open(path, encoding="utf-8", newline="")


def list_spans(root: str | pathlib.Path) -> list[dt.date]:
    """The days that have a span folder under ``root``, oldest first."""
    spans_root = join(root, layout.SPANS_DIR)
    if not isdir(spans_root):
        return []
    days = []
    for name in listdir(spans_root):
        try:
            days.append(dt.datetime.strptime(name, layout.SPAN_FORMAT).date())
        except ValueError:
            continue
    return sorted(days)
