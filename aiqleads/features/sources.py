"""The offline store's sources: the data set's raw contract tables as typed pandas frames.

Dates become ``datetime64`` at midnight UTC and timestamps int64 seconds since the epoch, so
joins compare them without string parsing. Reading does not validate: ExampleGen runs
``aiqleads.data.validate`` on its window first. ExampleGen's as-of joins
(``components/example_gen``) and the materialization (`materialize`) read through here.
"""

from __future__ import annotations

import datetime as dt
import pathlib

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from aiqleads import contracts as c
from aiqleads import layout
from aiqleads.errors import DataError

TS_SECONDS = "ts_seconds"  # int64 seconds since the epoch, added to events
DAY_SECONDS = 86_400


def _read(path: pathlib.Path, contract: c.Contract) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"missing {contract.name} file {path}: the data set layout is broken")
    dtypes: dict[str, type] = {}
    for field in contract.fields:
        if field.kind in (c.Kind.STRING, c.Kind.DATE, c.Kind.TIMESTAMP):
            dtypes[field.name] = str
        else:
            dtypes[field.name] = float
    try:
        frame = pd.read_csv(path, dtype=dtypes, keep_default_na=False, na_values=[""])
    except (ValueError, pd.errors.ParserError) as e:
        raise DataError(f"cannot read {path}: {e}") from e
    missing = [col for col in contract.columns if col not in frame.columns]
    if missing:
        raise DataError(f"{path} lacks columns {missing}; expected {list(contract.columns)}")
    return frame[list(contract.columns)]


def _to_day(series: pd.Series) -> pd.Series:
    return pd.to_datetime(series, format=layout.SPAN_FORMAT)


def to_seconds(days: pd.Series) -> NDArray[np.int64]:
    """datetime64 values -> int64 seconds since the epoch."""
    seconds: NDArray[np.int64] = days.values.astype("datetime64[s]").astype(np.int64)
    return seconds


def day_end_seconds(day: dt.date) -> int:
    """The first second after ``day`` (UTC): "as of the end of the day"."""
    midnight = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), dt.timezone.utc)
    return int(midnight.timestamp())


def read_leads(root: pathlib.Path | str) -> pd.DataFrame:
    frame = _read(layout.table_path(pathlib.Path(root), c.LEADS), c.LEADS)
    frame[c.LISTED_DATE] = _to_day(frame[c.LISTED_DATE])
    return frame


def read_users(root: pathlib.Path | str) -> pd.DataFrame:
    frame = _read(layout.table_path(pathlib.Path(root), c.USERS), c.USERS)
    frame[c.SIGNUP_DATE] = _to_day(frame[c.SIGNUP_DATE])
    return frame


def read_events(root: pathlib.Path | str, days: list[dt.date]) -> pd.DataFrame:
    """The events of ``days`` with an added int64 ``ts_seconds`` column."""
    frames = [_read(layout.table_path(pathlib.Path(root), c.EVENTS, d), c.EVENTS) for d in days]
    if not frames:
        frame = pd.DataFrame({col: pd.Series(dtype=str) for col in c.EVENTS.columns})
    else:
        frame = pd.concat(frames, ignore_index=True)
    stamps = pd.to_datetime(frame[c.TIMESTAMP], format="%Y-%m-%dT%H:%M:%SZ")
    frame[TS_SECONDS] = stamps.values.astype("datetime64[s]").astype(np.int64)
    return frame


def read_market(root: pathlib.Path | str, days: list[dt.date]) -> pd.DataFrame:
    frames = [_read(layout.table_path(pathlib.Path(root), c.MARKET, d), c.MARKET) for d in days]
    if not frames:
        frame = pd.DataFrame({col: pd.Series(dtype=str) for col in c.MARKET.columns})
    else:
        frame = pd.concat(frames, ignore_index=True)
    frame[c.DATE] = _to_day(frame[c.DATE])
    return frame


def spans_up_to(root: pathlib.Path | str, as_of: dt.date) -> list[dt.date]:
    """Every span day on or before ``as_of``."""
    return [d for d in layout.list_spans(pathlib.Path(root)) if d <= as_of]
