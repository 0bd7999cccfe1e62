"""The rolling window of spans a run reads: paths, selection, contract validation, fingerprint.

Paths are strings read through ``tf.io.gfile``, so a data root on ``gs://`` or ``s3://``
(with TensorFlow's file system plugins) works like a local folder.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import pathlib

import tensorflow as tf

from aiqleads import contracts as c
from aiqleads.data import io, validate
from aiqleads.data.uris import join as uri
from aiqleads.data.uris import list_spans, table_uri
from aiqleads.errors import DataError


def select_window(
    data_root: str | pathlib.Path, window_spans: int, as_of: dt.date | None = None
) -> list[dt.date]:
    """The last ``window_spans`` span days on or before ``as_of`` (default: the newest)."""
    if window_spans < 1:
        raise DataError(f"window_spans must be at least 1, got {window_spans}")
    days = list_spans(data_root)
    if as_of is not None:
        days = [d for d in days if d <= as_of]
    if not days:
        raise DataError(
            f"no span folders (spans/YYYY-MM-DD) under {data_root}"
            + (f" on or before {as_of}" if as_of else "")
            + "; generate data with `aiqleads data synth` or point --data at a data set"
        )
    return days[-window_spans:]


def window_files(data_root: str | pathlib.Path, window: list[dt.date]) -> list[str]:
    """The dimension tables and every table of the window's spans, in a stable order."""
    files = [table_uri(data_root, c.LEADS), table_uri(data_root, c.USERS)]
    for day in window:
        files += [table_uri(data_root, c.EVENTS, day), table_uri(data_root, c.MARKET, day)]
    return files


def validate_window(data_root: str | pathlib.Path, window: list[dt.date]) -> None:
    """Raise ``DataError`` naming the file, line and column of the first contract violations."""
    for path in window_files(data_root, window):
        if not tf.io.gfile.exists(path):
            raise DataError(f"missing file {path}: every span needs events.csv and market.csv")
        with tf.io.gfile.GFile(path, "r") as handle:
            text = io.read_text_csv(handle, path)
        contract = validate.contract_for_file(pathlib.Path(path))
        validate.raise_for_violations(validate.validate_frame(text, contract, source=path))


def fingerprint(data_root: str | pathlib.Path, window: list[dt.date]) -> str:
    """A digest of the window's span names and file contents: the ExampleGen cache key.

    A new span, or any edit of a file the run reads, changes it, so the next run recomputes;
    an unchanged data set reuses the cached execution.
    """
    digest = hashlib.sha256()
    prefix = len(uri(data_root, "x")) - 1
    for path in window_files(data_root, window):
        digest.update(path[prefix:].encode())
        if tf.io.gfile.exists(path):
            with tf.io.gfile.GFile(path, "rb") as fh:
                for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                    digest.update(block)
        else:
            digest.update(b"<missing>")
    return digest.hexdigest()
