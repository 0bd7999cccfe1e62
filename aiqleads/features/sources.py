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
from aiqleads.data import io, uris
from aiqleads.errors import DataError

TS_SECONDS = "ts_seconds"  # int64 seconds since the epoch, added to events
DAY_SECONDS = 86_400


def empty_table(contract: c.Contract) -> pd.DataFrame:
    """A typed table of ``contract`` with no rows."""
    text = pd.DataFrame({col: pd.Series(dtype=str) for col in contract.columns})
    return typed_table(text, contract, f"no {contract.name} rows")


def typed_table(text: pd.DataFrame, contract: c.Contract, name: str) -> pd.DataFrame:
    """The contract's columns of a text table, typed: numbers as float (empty as NaN),
    text as str (empty as NaN), dates as ``datetime64`` and event times in ``ts_seconds``.
    Cells must be valid (`aiqleads.data.validate` checks them first)."""
    missing = [col for col in contract.columns if col not in text.columns]
    if missing:
        raise DataError(f"{name} lacks columns {missing}; expected {list(contract.columns)}")
    frame = pd.DataFrame(index=text.index)
    try:
        for field in contract.fields:
            column = text[field.name].replace("", np.nan)
            if field.kind in (c.Kind.STRING, c.Kind.DATE, c.Kind.TIMESTAMP):
                frame[field.name] = column
            else:
                frame[field.name] = column.astype(float)
    except ValueError as e:
        raise DataError(f"cannot read {name}: {e}") from e
    if contract.name == c.LEADS.name:
        frame[c.LISTED_DATE] = _to_day(frame[c.LISTED_DATE])
    elif contract.name == c.USERS.name:
        frame[c.SIGNUP_DATE] = _to_day(frame[c.SIGNUP_DATE])
    elif contract.name == c.MARKET.name:
        frame[c.DATE] = _to_day(frame[c.DATE])
    elif contract.name == c.EVENTS.name:
        stamps = pd.to_datetime(frame[c.TIMESTAMP], format="%Y-%m-%dT%H:%M:%SZ")
        frame[TS_SECONDS] = stamps.values.astype("datetime64[s]").astype(np.int64)
    return frame


def _read(path: str, contract: c.Contract) -> pd.DataFrame:
    if not uris.isfile(path):
        raise DataError(f"missing {contract.name} file {path}: the data set layout is broken")
    with uris.open_text(path) as handle:
        return typed_table(io.read_text_csv(handle, path), contract, path)


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
    return _read(uris.table_uri(root, c.LEADS), c.LEADS)


def read_users(root: pathlib.Path | str) -> pd.DataFrame:
    return _read(uris.table_uri(root, c.USERS), c.USERS)


def read_events(root: pathlib.Path | str, days: list[dt.date]) -> pd.DataFrame:
    """The events of ``days`` with an added int64 ``ts_seconds`` column."""
    frames = [_read(uris.table_uri(root, c.EVENTS, d), c.EVENTS) for d in days]
    if not frames:
        return empty_table(c.EVENTS)
    return pd.concat(frames, ignore_index=True)


def read_market(root: pathlib.Path | str, days: list[dt.date]) -> pd.DataFrame:
    frames = [_read(uris.table_uri(root, c.MARKET, d), c.MARKET) for d in days]
    if not frames:
        return empty_table(c.MARKET)
    return pd.concat(frames, ignore_index=True)


def spans_up_to(root: pathlib.Path | str, as_of: dt.date) -> list[dt.date]:
    """Every span day on or before ``as_of``."""
    return [d for d in uris.list_spans(root) if d <= as_of]
