"""The history a daily ExampleGen run carries to the next, so it reads its window and a
compact state instead of every span since the beginning.

The examples of a window need, of the events before the window, only what the as-of joins
add up: per user and lead, how many events of each type and when the last one was. A run
folds that (the carried rows it read, and its own events up to the end of the window's
first day) into the state the next day's run starts from, and writes it under the state
root (``as_of=YYYY-MM-DD/``):

- ``rows/carried-*.csv``: one line per (user, lead, event type): ``user,lead,type,last
  second,count`` (CSV without a header, quoted where a value needs it), written by the Beam
  pipeline one block of lines per user group, sharded like the events;
- ``market.jsonl``: each region's latest market rows, for regions without a row in the
  spans read after the state;
- ``state.json`` (written last, so a state without it is incomplete and never read): the
  day it is as of, and the size and modification time of every span file it folded.

A run writes two: as of its window's first day (the next day's run starts from it) and as
of its last day (the Trainer's serving snapshots, `snapshots.DayHistory`, come from it).

Lead attributes (coordinates, price, type, region) are not carried: the joins read them
from today's leads.csv for carried rows as for events, so a price change applies to the
whole history exactly as a full read would apply it. The examples are therefore the same
with or without a state (a test compares them with the pandas run's), and ExampleGen's
cache key does not include it.

A state is used only when every span up to its day is unchanged (same files, sizes and
modification times); a rewritten or backfilled span makes the run read every span again,
and say so in its log.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import logging
import uuid
from collections.abc import Iterable
from typing import IO

import numpy as np
import pandas as pd
import tensorflow as tf

from aiqleads import contracts as c
from aiqleads.data.uris import join as uri
from aiqleads.data.uris import list_spans, table_uri
from aiqleads.errors import DataError
from components.example_gen import features_join, raw_tables

log = logging.getLogger(__name__)

STATE_DIR = "history_state"  # beside the component's output folders
FORMAT = 2  # the layout of the files below; a state of another format is not read
DIR_PREFIX = "as_of="
META_FILE = "state.json"
ROWS_DIR = "rows"
ROWS_PREFIX = "carried"
MARKET_PREFIX, MARKET_SUFFIX = "market", ".jsonl"
MARKET_FILE = MARKET_PREFIX + MARKET_SUFFIX
KEEP = 4  # states kept: two a run; a rerun of today's window still finds yesterday's
TS = raw_tables.TS_SECONDS
CARRIED = features_join.CARRIED_EVENTS
_MARKET_FLOATS = (c.DEMAND, c.MEDIAN_PRICE, c.INVENTORY, c.PRICE_TREND)


@dataclasses.dataclass(frozen=True)
class State:
    """A complete state: where it is and the day it is as of (every event up to that
    day's end is in it)."""

    path: str
    as_of: dt.date

    @property
    def rows_pattern(self) -> str:
        return uri(self.path, ROWS_DIR, f"{ROWS_PREFIX}-*")

    @property
    def market_path(self) -> str:
        return uri(self.path, MARKET_FILE)


def root_beside(examples_uri: str) -> str:
    """The state root of the component that writes ``examples_uri``: TFX lays outputs out as
    ``<pipeline root>/<component>/<output>/<execution>``, and the state lives in
    ``<pipeline root>/<component>/history_state``."""
    component = examples_uri.rstrip("/").rsplit("/", 2)[0]
    return uri(component, STATE_DIR)


def span_stats(data_root: str, days: Iterable[dt.date]) -> dict[str, list[int]]:
    """Per span day: the size and modification time of its events and market files."""
    stats = {}
    for day in days:
        values = []
        for contract in (c.EVENTS, c.MARKET):
            stat = tf.io.gfile.stat(table_uri(data_root, contract, day))
            values += [int(stat.length), int(stat.mtime_nsec)]
        stats[day.isoformat()] = values
    return stats


def _states(state_root: str) -> list[tuple[dt.date, str]]:
    """(day, path) of the state folders under ``state_root``, newest first."""
    if not tf.io.gfile.isdir(state_root):
        return []
    found = []
    for name in tf.io.gfile.listdir(state_root):
        name = name.rstrip("/")
        if not name.startswith(DIR_PREFIX):
            continue
        try:
            day = dt.date.fromisoformat(name[len(DIR_PREFIX) :])
        except ValueError:
            continue
        found.append((day, uri(state_root, name)))
    return sorted(found, reverse=True)


def _mismatch(path: str, day: dt.date, data_root: str) -> str:
    """Why the state at ``path`` cannot stand for the spans up to ``day`` ("" if it can)."""
    meta_path = uri(path, META_FILE)
    if not tf.io.gfile.exists(meta_path):
        return "incomplete (no state.json)"
    try:
        with tf.io.gfile.GFile(meta_path, "r") as handle:
            meta = json.load(handle)
    except (ValueError, tf.errors.OpError) as e:
        return f"unreadable state.json ({e})"
    if meta.get("format") != FORMAT:
        return f"format {meta.get('format')}, this code reads {FORMAT}"
    days = [d for d in list_spans(data_root) if d <= day]
    try:
        now = span_stats(data_root, days)
    except tf.errors.NotFoundError as e:
        return f"a span file is missing ({e.message})"
    then = meta.get("spans", {})
    changed = sorted(set(now) ^ set(then)) or sorted(d for d in now if now[d] != then[d])
    if changed:
        return f"span {changed[0]} changed since the state was written"
    return ""


def latest(state_root: str, data_root: str, before: dt.date) -> State | None:
    """The newest usable state of ``data_root`` as of a day before ``before``, or None (the
    run then reads every span); why a newer one is not used goes to the log."""
    for day, path in _states(state_root):
        if day >= before:
            continue
        reason = _mismatch(path, day, data_root)
        if not reason:
            return State(path, day)
        log.info("history state %s not used: %s", path, reason)
    return None


def at(state_root: str, data_root: str, day: dt.date) -> State | None:
    """The usable state as of exactly ``day``, or None (why not goes to the log)."""
    path = uri(state_root, f"{DIR_PREFIX}{day.isoformat()}")
    if not tf.io.gfile.isdir(path):
        log.info("no history state as of %s under %s", day, state_root)
        return None
    reason = _mismatch(path, day, data_root)
    if reason:
        log.info("history state %s not used: %s", path, reason)
        return None
    return State(path, day)


def fold(history: pd.DataFrame, until_ts: int) -> pd.DataFrame:
    """The carried rows of ``history`` (events, and carried rows) before ``until_ts``: one
    per (user, lead, event type), with the count and the last event's second."""
    before = history[history[TS] < until_ts]
    frame = pd.DataFrame(
        {
            c.USER_ID: before[c.USER_ID].to_numpy(),
            c.LEAD_ID: before[c.LEAD_ID].to_numpy(),
            c.EVENT_TYPE: before[c.EVENT_TYPE].to_numpy(),
            TS: before[TS].to_numpy(np.int64),
            CARRIED: features_join.event_multiplicity(before).astype(np.int64),
        }
    )
    keys = [c.USER_ID, c.LEAD_ID, c.EVENT_TYPE]
    return (
        frame.groupby(keys, sort=True, dropna=False).agg({TS: "max", CARRIED: "sum"}).reset_index()
    )


_ROW_COLUMNS = (c.USER_ID, c.LEAD_ID, c.EVENT_TYPE, TS, CARRIED)
ROWS_SUFFIX = ".csv"


def encode_rows(rows: pd.DataFrame) -> str:
    """Carried rows as one block of CSV lines (no header, no final newline; "" for none)."""
    if rows.empty:
        return ""
    frame = rows[list(_ROW_COLUMNS)].astype({TS: np.int64, CARRIED: np.int64})
    text: str = frame.to_csv(header=False, index=False, lineterminator="\n")
    return text.rstrip("\n")


def decode_rows(text: str | IO[str]) -> pd.DataFrame:
    """Carried rows (CSV text or an open file of it) as history rows: the events' columns
    and the count."""
    source = io.StringIO(text) if isinstance(text, str) else text
    try:
        frame = pd.read_csv(
            source,
            header=None,
            names=list(_ROW_COLUMNS),
            dtype={c.USER_ID: str, c.LEAD_ID: str, c.EVENT_TYPE: str, TS: np.int64},
            keep_default_na=False,
            na_filter=False,
        )
    except pd.errors.EmptyDataError:
        frame = pd.DataFrame({col: pd.Series(dtype=object) for col in _ROW_COLUMNS})
        frame[TS] = frame[TS].astype(np.int64)
    frame[CARRIED] = frame[CARRIED].astype(float)
    frame[c.EVENT_ID] = ""
    return frame


def read_rows(path: str) -> pd.DataFrame:
    """One file of carried rows; a file that is not such rows is a `DataError` that names
    it (removing the state's folder makes the next run read every span)."""
    with tf.io.gfile.GFile(path, "r") as handle:
        try:
            return decode_rows(handle)
        except (pd.errors.ParserError, ValueError) as e:
            raise DataError(
                f"{path}: not a file of carried history rows ({e}); remove the state's "
                "folder to have the next run read every span"
            ) from e


def read_all_rows(state: State) -> pd.DataFrame:
    """Every carried row of a state, as history rows."""
    frames = [read_rows(path) for path in sorted(tf.io.gfile.glob(state.rows_pattern))]
    return pd.concat(frames, ignore_index=True) if frames else decode_rows("")


def carried_market(market: pd.DataFrame, until: dt.date) -> pd.DataFrame:
    """Each region's rows of its latest day on or before ``until`` (what an as-of join of a
    later day takes when no newer row came)."""
    if c.DATE not in market.columns:  # no market file was read
        return pd.DataFrame(columns=[c.REGION, c.DATE, *_MARKET_FLOATS])
    rows = market[market[c.DATE] <= pd.Timestamp(until)]
    if rows.empty:
        return rows
    latest_day = rows.groupby(c.REGION)[c.DATE].transform("max")
    return rows[rows[c.DATE] == latest_day].reset_index(drop=True)


def encode_market(market: pd.DataFrame) -> str:
    lines = []
    for row in market.itertuples(index=False):
        record = row._asdict()
        out = {c.REGION: record[c.REGION], c.DATE: pd.Timestamp(record[c.DATE]).date().isoformat()}
        for col in _MARKET_FLOATS:
            value = float(record[col])
            out[col] = value if np.isfinite(value) else None
        lines.append(json.dumps(out, sort_keys=True))
    return "\n".join(lines)


def read_market(state: State) -> pd.DataFrame:
    """The market rows a state carries, typed like a market file's."""
    with tf.io.gfile.GFile(state.market_path, "r") as handle:
        records = [json.loads(line) for line in handle if line.strip()]
    frame = pd.DataFrame(records, columns=[c.REGION, c.DATE, *_MARKET_FLOATS])
    frame[c.DATE] = pd.to_datetime(frame[c.DATE])
    for col in _MARKET_FLOATS:
        frame[col] = frame[col].astype(float)
    return frame


def staging_path(state_root: str) -> str:
    """A fresh folder a run writes its state into before `commit` names it."""
    return uri(state_root, f"staging-{uuid.uuid4().hex}")


def commit(state_root: str, staging: str, data_root: str, as_of: dt.date) -> State:
    """Name the state written to ``staging`` as of ``as_of``, write its ``state.json`` last,
    and keep the newest `KEEP` states."""
    final = uri(state_root, f"{DIR_PREFIX}{as_of.isoformat()}")
    if tf.io.gfile.exists(final):
        tf.io.gfile.rmtree(final)
    tf.io.gfile.rename(staging, final)
    days = [d for d in list_spans(data_root) if d <= as_of]
    meta = {"format": FORMAT, "as_of": as_of.isoformat(), "spans": span_stats(data_root, days)}
    with tf.io.gfile.GFile(uri(final, META_FILE), "w") as handle:
        json.dump(meta, handle, sort_keys=True)
    for _, old in _states(state_root)[KEEP:]:
        tf.io.gfile.rmtree(old)
    return State(final, as_of)


def discard(staging: str) -> None:
    """Remove a state a failed run began to write."""
    if tf.io.gfile.exists(staging):
        tf.io.gfile.rmtree(staging)
