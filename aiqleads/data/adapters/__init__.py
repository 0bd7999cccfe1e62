"""Adapters from the real data sets in ``../shared/data`` to the contracts and span layout.

Each adapter module has ``SOURCE_DIR`` (its folder under the shared data root), ``build(source,
seed) -> Imported`` and an attribution; `run` resolves the paths, writes the data set, checks
it against the contracts and returns a summary.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib
import os
import pathlib
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol, cast

import numpy as np
import pandas as pd
from numpy.typing import NDArray

import aiqleads
from aiqleads import contracts, layout
from aiqleads.data import io, spans
from aiqleads.data.dataset_validation import validate_dataset
from aiqleads.errors import DataError

ENV_SHARED_DATA = "AIQLEADS_SHARED_DATA"
MODULES = {
    "kingcounty": "aiqleads.data.adapters.kingcounty",
    "barossa": "aiqleads.data.adapters.barossa",
    "uci-restaurant": "aiqleads.data.adapters.uci_restaurant",
}


@dataclasses.dataclass
class Imported:
    """A data set in contract form, before it is written."""

    leads: pd.DataFrame
    users: pd.DataFrame
    events: pd.DataFrame  # sorted by timestamp
    market: pd.DataFrame  # sorted by date
    manifest: dict[str, Any]
    span_days: list[dt.date] | None = None  # None: the days that have events or market rows

    def row_counts(self) -> dict[str, int]:
        """Rows per table, in contract order."""
        return {
            "leads": len(self.leads),
            "users": len(self.users),
            "events": len(self.events),
            "market": len(self.market),
        }


class _Adapter(Protocol):
    """What an adapter module offers (the module docstring above)."""

    SOURCE_DIR: str
    SOURCE_FILES: tuple[str, ...]

    def build(self, folder: pathlib.Path, seed: int) -> Imported: ...


@dataclasses.dataclass
class ImportSummary:
    out: pathlib.Path
    rows: dict[str, int]
    span_count: int
    first_span: str
    last_span: str
    seconds: float


def default_shared_data() -> pathlib.Path:
    """``$AIQLEADS_SHARED_DATA``, else ``<repo>/../shared/data``."""
    env = os.environ.get(ENV_SHARED_DATA)
    if env:
        return pathlib.Path(env)
    return pathlib.Path(aiqleads.__file__).resolve().parents[1].parent / "shared" / "data"


def source_dir(name: str, source: pathlib.Path | None = None) -> pathlib.Path:
    """The folder holding data set ``name``'s files; a DataError says how to point at it."""
    module = _module(name)
    root = pathlib.Path(source) if source is not None else default_shared_data()
    folder = root / module.SOURCE_DIR
    if not folder.is_dir():
        # --source may also name the data set's own folder.
        if root.is_dir() and all((root / f).is_file() for f in module.SOURCE_FILES):
            return root
        raise DataError(
            f"{folder}: no such folder; pass --source DIR (the shared data folder) or set "
            f"{ENV_SHARED_DATA}"
        )
    missing = [f for f in module.SOURCE_FILES if not (folder / f).is_file()]
    if missing:
        raise DataError(f"{folder}: missing {', '.join(missing)}")
    return folder


def _module(name: str) -> _Adapter:
    if name not in MODULES:
        raise DataError(f"unknown data set {name!r}; one of {', '.join(MODULES)}")
    return cast(_Adapter, importlib.import_module(MODULES[name]))


def read_source_csv(path: pathlib.Path, **kwargs: Any) -> pd.DataFrame:
    """Read a source CSV file, with a DataError naming it when it cannot be parsed."""
    try:
        return pd.read_csv(path, **kwargs)
    except (OSError, ValueError, pd.errors.ParserError) as e:
        raise DataError(f"{path}: cannot read ({e})") from e


def market_frame(rows: Sequence[tuple[object, ...]]) -> pd.DataFrame:
    """Market rows ``(region, date, demand, median_price, inventory, price_trend)`` as a frame."""
    return pd.DataFrame(rows, columns=list(contracts.MARKET.columns))


def day_numbers(dates: pd.Series | list[str]) -> NDArray[np.int64]:
    """``YYYY-MM-DD`` dates as days since 1970-01-01 (int64); a DataError on any other text."""
    try:
        values = pd.to_datetime(pd.Series(dates), format="%Y-%m-%d")
    except (ValueError, TypeError) as e:
        raise DataError(f"a date is not YYYY-MM-DD: {e}") from e
    days: NDArray[np.int64] = values.to_numpy().astype("datetime64[D]").astype(np.int64)
    return days


def require_columns(frame: pd.DataFrame, columns: list[str], path: pathlib.Path) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}; is this the right file?")


def run(
    name: str,
    out: pathlib.Path,
    source: pathlib.Path | None = None,
    seed: int = 42,
    overwrite: bool = False,
    progress: Callable[[str], None] | None = None,
) -> ImportSummary:
    """Import data set ``name`` into ``out`` and check the result against the contracts."""
    started = time.perf_counter()
    say = progress or (lambda _m: None)
    module = _module(name)
    folder = source_dir(name, source)
    out = io.prepare_output_dir(pathlib.Path(out), overwrite)
    say(f"reading {folder}")
    data = module.build(folder, seed)
    say(
        f"writing leads {len(data.leads):,}, users {len(data.users):,}, events "
        f"{len(data.events):,}, market {len(data.market):,}"
    )
    written = write_dataset(out, data)
    say("checking the contracts")
    validate_dataset(out)
    return ImportSummary(
        out, data.row_counts(), len(written), written[0], written[-1], time.perf_counter() - started
    )


def write_dataset(out: pathlib.Path, data: Imported) -> list[str]:
    """Write the tables, one span folder per day, and the manifest; returns the span names."""
    io.write_table(data.leads, layout.table_path(out, contracts.LEADS), contracts.LEADS)
    io.write_table(data.users, layout.table_path(out, contracts.USERS), contracts.USERS)
    e_day = day_numbers(data.events[contracts.TIMESTAMP].str.slice(0, 10))
    m_day = day_numbers(data.market[contracts.DATE])
    if data.span_days is not None:
        days = sorted({_to_number(d) for d in data.span_days})
    else:
        days = sorted(set(e_day.tolist()) | set(m_day.tolist()))
    if not days:
        raise DataError("the source yielded no events and no market rows")
    names = spans.write_spans(out, _EPOCH, days, data.events, e_day, data.market, m_day)
    manifest = dict(data.manifest)
    manifest.update(
        rows=data.row_counts(), spans={"first": names[0], "last": names[-1], "count": len(names)}
    )
    manifest["event_mix"] = spans.event_mix(data.events)
    io.write_manifest(out, manifest)
    return names


_EPOCH = dt.date(1970, 1, 1)


def _to_number(day: dt.date) -> int:
    return (day - _EPOCH).days
