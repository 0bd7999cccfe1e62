"""Turning simulated or imported rows into contract tables and daily span folders."""

from __future__ import annotations

import datetime as dt
import pathlib
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from aiqleads import contracts, layout
from aiqleads.data import io
from aiqleads.data.synth_behaviour import SECONDS_PER_DAY, Events

EVENT_ID_WIDTH = 8


def make_ids(prefix: str, count: int, width: int = 6) -> NDArray[np.object_]:
    """Zero-padded identifiers ``<prefix>000001`` ... (1-based), as an object array."""
    return np.array([f"{prefix}{i:0{width}d}" for i in range(1, count + 1)], dtype=object)


def format_dates(start: dt.date, day_index: NDArray[np.int64]) -> NDArray[np.object_]:
    """ISO dates for day offsets from ``start``."""
    base = np.datetime64(start, "D")
    return np.datetime_as_string(base + day_index.astype("timedelta64[D]"), unit="D").astype(object)


def format_timestamps(start: dt.date, seconds: NDArray[np.int64]) -> NDArray[np.object_]:
    """ISO 8601 UTC timestamps (``...Z``) for second offsets from ``start`` 00:00 UTC."""
    base = np.datetime64(start, "s")
    text = np.datetime_as_string(base + seconds.astype("timedelta64[s]"), unit="s")
    return np.array([t + "Z" for t in text.tolist()], dtype=object)


def events_frame(
    events: Events,
    user_ids: NDArray[np.object_],
    lead_ids: NDArray[np.object_],
    start: dt.date,
    request_ids: NDArray[np.object_] | None = None,
) -> tuple[pd.DataFrame, NDArray[np.int64]]:
    """The events table in time order with ids assigned, and each row's day index.

    Ties are broken by user, lead and funnel step, so the order (and the ids) are stable.
    ``request_ids`` maps a request number to its id; -1 means no request.
    """
    order = np.lexsort((events.code, events.lead, events.user, events.seconds))
    seconds = events.seconds[order]
    request = events.request[order]
    if request_ids is None:
        req_text = np.array([f"rq{r}" if r >= 0 else "" for r in request.tolist()], dtype=object)
    else:
        req_text = np.where(request >= 0, request_ids[np.maximum(request, 0)], "")
    frame = pd.DataFrame(
        {
            contracts.EVENT_ID: make_ids("e", len(order), EVENT_ID_WIDTH),
            contracts.USER_ID: user_ids[events.user[order]],
            contracts.LEAD_ID: lead_ids[events.lead[order]],
            contracts.EVENT_TYPE: np.asarray(contracts.EVENT_TYPES, dtype=object)[
                events.code[order]
            ],
            contracts.TIMESTAMP: format_timestamps(start, seconds),
            contracts.REQUEST_ID: req_text.astype(object),
        }
    )
    return frame, seconds // SECONDS_PER_DAY


def write_spans(
    root: pathlib.Path,
    start: dt.date,
    days: Sequence[int],
    events: pd.DataFrame,
    event_day: NDArray[np.int64],
    market: pd.DataFrame,
    market_day: NDArray[np.int64],
    progress: Callable[[int], None] | None = None,
) -> list[str]:
    """Write ``spans/<day>/{events,market}.csv`` for each day index in ``days``.

    ``events`` must be sorted by ``event_day`` and ``market`` by ``market_day``; a day with
    no rows gets header-only files, so every span folder has both tables.
    """
    names = []
    day_index = np.asarray(sorted(days), dtype=np.int64)
    e_bounds = np.searchsorted(event_day, np.stack([day_index, day_index + 1]))
    m_bounds = np.searchsorted(market_day, np.stack([day_index, day_index + 1]))
    e_head, e_lines = io.csv_lines(events, contracts.EVENTS.columns)
    m_head, m_lines = io.csv_lines(market, contracts.MARKET.columns)
    for i, d in enumerate(day_index):
        when = start + dt.timedelta(days=int(d))
        events_path = layout.table_path(root, contracts.EVENTS, when)
        io.write_lines(events_path, e_head, e_lines[e_bounds[0, i] : e_bounds[1, i]])
        market_path = layout.table_path(root, contracts.MARKET, when)
        io.write_lines(market_path, m_head, m_lines[m_bounds[0, i] : m_bounds[1, i]])
        names.append(layout.span_name(when))
        if progress:
            progress(1)
    return names


def event_mix(events: pd.DataFrame) -> dict[str, int]:
    """Count of events per type, in funnel order."""
    counts = events[contracts.EVENT_TYPE].value_counts()
    return {t: int(counts.get(t, 0)) for t in contracts.EVENT_TYPES}
