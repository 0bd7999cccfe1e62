"""The rolling window of spans a run reads: selection, contract validation, fingerprint."""

from __future__ import annotations

import datetime as dt
import hashlib
import pathlib

from aiqleads import contracts as c
from aiqleads import layout
from aiqleads.data import validate
from aiqleads.errors import DataError


def select_window(
    data_root: str | pathlib.Path, window_spans: int, as_of: dt.date | None = None
) -> list[dt.date]:
    """The last ``window_spans`` span days on or before ``as_of`` (default: the newest)."""
    if window_spans < 1:
        raise DataError(f"window_spans must be at least 1, got {window_spans}")
    days = layout.list_spans(pathlib.Path(data_root))
    if as_of is not None:
        days = [d for d in days if d <= as_of]
    if not days:
        raise DataError(
            f"no span folders (spans/YYYY-MM-DD) under {data_root}"
            + (f" on or before {as_of}" if as_of else "")
            + "; generate data with `aiqleads data synth` or point --data at a data set"
        )
    return days[-window_spans:]


def window_files(data_root: str | pathlib.Path, window: list[dt.date]) -> list[pathlib.Path]:
    """The dimension tables and every table of the window's spans, in a stable order."""
    root = pathlib.Path(data_root)
    files = [layout.table_path(root, c.LEADS), layout.table_path(root, c.USERS)]
    for day in window:
        files += [layout.table_path(root, c.EVENTS, day), layout.table_path(root, c.MARKET, day)]
    return files


def validate_window(data_root: str | pathlib.Path, window: list[dt.date]) -> None:
    """Raise ``DataError`` naming the file, line and column of the first contract violations."""
    for path in window_files(data_root, window):
        if not path.is_file():
            raise DataError(f"missing file {path}: every span needs events.csv and market.csv")
        validate.validate_file(path, validate.contract_for_file(path))


def fingerprint(data_root: str | pathlib.Path, window: list[dt.date]) -> str:
    """A digest of the window's span names and file contents: the ExampleGen cache key.

    A new span, or any edit of a file the run reads, changes it, so the next run recomputes;
    an unchanged data set reuses the cached execution.
    """
    digest = hashlib.sha256()
    for path in window_files(data_root, window):
        digest.update(str(path.relative_to(data_root)).encode())
        if path.is_file():
            with path.open("rb") as fh:
                for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                    digest.update(block)
        else:
            digest.update(b"<missing>")
    return digest.hexdigest()
