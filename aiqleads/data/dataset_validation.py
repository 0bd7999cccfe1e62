"""Whole-data-set validation: every table against its contract, plus referential checks.

Referential rules: events name users and leads that exist (among the valid rows of
users.csv and leads.csv), an event's timestamp and a market row's date fall on the day of the
span that holds them, and an event id is used once in the whole data set.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Callable

import numpy as np
import pandas as pd

from aiqleads import contracts, layout
from aiqleads.data import io
from aiqleads.data.validate import TableReport, Violation, validate_frame, write_quarantine
from aiqleads.errors import DataError


@dataclasses.dataclass
class DatasetReport:
    """Per-file outcome of a whole-data-set validation."""

    root: pathlib.Path
    tables: list[TableReport] = dataclasses.field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)

    @property
    def bad_rows(self) -> int:
        return sum(t.bad_rows for t in self.tables)

    def rows_by_contract(self) -> dict[str, tuple[int, int]]:
        """contract name -> (rows, bad rows), summed over files."""
        out: dict[str, tuple[int, int]] = {}
        for t in self.tables:
            rows, bad = out.get(t.contract, (0, 0))
            out[t.contract] = (rows + t.rows, bad + t.bad_rows)
        return out

    @property
    def violations(self) -> list[Violation]:
        return [v for t in self.tables for v in t.violations]


def _span_checks(
    frame: pd.DataFrame,
    contract: contracts.Contract,
    day: str,
    user_ids: set[str],
    lead_ids: set[str],
    seen_events: set[str],
) -> list[tuple[str, np.ndarray, str]]:
    if contract is contracts.MARKET:
        if contracts.DATE not in frame.columns:
            return []
        wrong_day = (frame[contracts.DATE] != day).to_numpy()
        return [(contracts.DATE, wrong_day, f"not the span's day {day}")]
    checks = []
    if contracts.TIMESTAMP in frame.columns:
        wrong_day = (frame[contracts.TIMESTAMP].str.slice(0, 10) != day).to_numpy()
        checks.append((contracts.TIMESTAMP, wrong_day, f"not on the span's day {day}"))
    if contracts.USER_ID in frame.columns:
        unknown = ~frame[contracts.USER_ID].isin(user_ids).to_numpy()
        checks.append((contracts.USER_ID, unknown, "no such user in users.csv"))
    if contracts.LEAD_ID in frame.columns:
        unknown = ~frame[contracts.LEAD_ID].isin(lead_ids).to_numpy()
        checks.append((contracts.LEAD_ID, unknown, "no such lead in leads.csv"))
    if contracts.EVENT_ID in frame.columns and seen_events:
        reused = frame[contracts.EVENT_ID].isin(seen_events).to_numpy()
        checks.append((contracts.EVENT_ID, reused, "event id already used in an earlier span"))
    return checks


def validate_dataset(
    root: pathlib.Path,
    quarantine: bool = False,
    progress: Callable[[str], None] | None = None,
) -> DatasetReport:
    """Validate every file of the data set at ``root``.

    Without ``quarantine`` a DataError names the first violations (after all files were
    checked, so its counts are complete). With it, each file's bad rows move to its
    quarantine file and the file keeps its good rows.
    """
    root = io.check_dataset_dir(pathlib.Path(root))
    report = DatasetReport(root=root)

    def check(path: pathlib.Path, contract, frame=None, extra=None) -> TableReport:
        if progress:
            progress(str(path.relative_to(root)))
        frame = io.read_text_table(path) if frame is None else frame
        result = validate_frame(frame, contract, source=str(path), extra_checks=extra)
        if quarantine:
            write_quarantine(result, path, keep_good=True)
        report.tables.append(result)
        return result

    leads = check(layout.table_path(root, contracts.LEADS), contracts.LEADS)
    users = check(layout.table_path(root, contracts.USERS), contracts.USERS)
    lead_ids = set(leads.good[contracts.LEAD_ID])
    user_ids = set(users.good[contracts.USER_ID])
    seen_events: set[str] = set()
    for day in layout.list_spans(root):
        day_text = layout.span_name(day)
        for contract in (contracts.EVENTS, contracts.MARKET):
            path = layout.table_path(root, contract, day)
            if not path.is_file():
                raise DataError(f"{path}: missing; every span folder holds {contract.file_name}")
            frame = io.read_text_table(path)
            extra = _span_checks(frame, contract, day_text, user_ids, lead_ids, seen_events)
            result = check(path, contract, frame, extra)
            if contract is contracts.EVENTS:
                seen_events.update(result.good[contracts.EVENT_ID])
    if not quarantine and report.bad_rows:
        first = report.violations[:3]
        files = sum(1 for t in report.tables if t.bad_rows)
        raise DataError(
            f"{root}: {report.bad_rows} of {report.rows} rows in {files} file(s) break the "
            f"contracts: {'; '.join(str(v) for v in first)}; rerun with --quarantine to move "
            "them aside"
        )
    return report
