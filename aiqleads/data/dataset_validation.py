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
from numpy.typing import NDArray

from aiqleads import contracts, layout
from aiqleads.data import io
from aiqleads.data.validate import (
    RowCheck,
    TableReport,
    Violation,
    check_columns,
    quarantine_path_for,
    validate_frame,
    write_quarantine,
)
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


def _known(values: pd.Series, ids: set[str]) -> NDArray[np.bool_]:
    return np.fromiter((v in ids for v in values), dtype=bool, count=len(values))


def _span_checks(
    frame: pd.DataFrame,
    contract: contracts.Contract,
    day_of_row: NDArray[np.object_],
    user_ids: set[str],
    lead_ids: set[str],
) -> list[RowCheck]:
    if contract is contracts.MARKET:
        if contracts.DATE not in frame.columns:
            return []
        wrong_day = frame[contracts.DATE].to_numpy(object) != day_of_row
        return [(contracts.DATE, wrong_day, "not the day of the span folder")]
    checks: list[RowCheck] = []
    if contracts.TIMESTAMP in frame.columns:
        wrong_day = frame[contracts.TIMESTAMP].str.slice(0, 10).to_numpy(object) != day_of_row
        checks.append((contracts.TIMESTAMP, wrong_day, "not on the day of the span folder"))
    if contracts.USER_ID in frame.columns:
        unknown = ~_known(frame[contracts.USER_ID], user_ids)
        checks.append((contracts.USER_ID, unknown, "no such user in users.csv"))
    if contracts.LEAD_ID in frame.columns:
        unknown = ~_known(frame[contracts.LEAD_ID], lead_ids)
        checks.append((contracts.LEAD_ID, unknown, "no such lead in leads.csv"))
    return checks


def _read_spans(
    root: pathlib.Path, contract: contracts.Contract, progress: Callable[[str], None] | None
) -> tuple[
    pd.DataFrame,
    list[pathlib.Path],
    tuple[NDArray[np.int64], NDArray[np.int64]],
    NDArray[np.object_],
]:
    """All span files of ``contract`` as one text frame, with each row's file, line, day."""
    days = layout.list_spans(root)
    paths = [layout.table_path(root, contract, day) for day in days]
    for path in paths:
        if not path.is_file():
            raise DataError(f"{path}: missing; every span folder holds {contract.file_name}")
    if progress:
        progress(f"{len(paths)} {contract.file_name} span files")
    headers, counts, joined = io.read_text_tables(paths, contract.columns)
    for header, path in zip(headers, paths, strict=True):
        check_columns(header, contract, str(path))
    file_of = np.repeat(np.arange(len(paths)), counts)
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    line_of = np.arange(len(joined), dtype=np.int64) - starts + 2
    names = np.asarray([layout.span_name(d) for d in days], dtype=object)
    day_of = names[file_of] if len(paths) else np.zeros(0, dtype=object)
    return joined, paths, (file_of, line_of), day_of


def validate_dataset(
    root: pathlib.Path,
    quarantine: bool = False,
    progress: Callable[[str], None] | None = None,
) -> DatasetReport:
    """Validate every file of the data set at ``root``.

    Without ``quarantine`` a DataError names the first violations (after all files were
    checked, so its counts are complete). With it, each file's bad rows move to its
    quarantine file and the file keeps its good rows. Span files of one contract are checked
    together, so an event id is unique across the whole data set.
    """
    root = io.check_dataset_dir(pathlib.Path(root))
    report = DatasetReport(root=root)

    def check_table(contract: contracts.Contract) -> TableReport:
        path = layout.table_path(root, contract)
        if progress:
            progress(str(path.relative_to(root)))
        result = validate_frame(io.read_text_table(path), contract, source=str(path))
        if quarantine:
            write_quarantine(result, path, keep_good=True)
        report.tables.append(result)
        return result

    leads = check_table(contracts.LEADS)
    users = check_table(contracts.USERS)
    lead_ids = set(leads.good[contracts.LEAD_ID])
    user_ids = set(users.good[contracts.USER_ID])
    for contract in (contracts.EVENTS, contracts.MARKET):
        frame, paths, (file_of, line_of), day_of = _read_spans(root, contract, progress)
        extra = _span_checks(frame, contract, day_of, user_ids, lead_ids)
        names = [str(p) for p in paths]
        result = validate_frame(
            frame,
            contract,
            source=str(root / layout.SPANS_DIR),
            extra_checks=extra,
            locations=(file_of, line_of, names),
        )
        if quarantine and result.bad_rows:
            _quarantine_spans(frame, result, paths, file_of, line_of, contract)
        report.tables.append(result)
    if not quarantine and report.bad_rows:
        first = report.violations[:3]
        raise DataError(
            f"{root}: {report.bad_rows} of {report.rows} rows break the contracts: "
            f"{'; '.join(str(v) for v in first)}; rerun with --quarantine to move them aside"
        )
    return report


def _quarantine_spans(
    frame: pd.DataFrame,
    result: TableReport,
    paths: list[pathlib.Path],
    file_of: NDArray[np.int64],
    line_of: NDArray[np.int64],
    contract: contracts.Contract,
) -> None:
    """Split a joined span table's verdict back into its files."""
    bad = result.bad_mask
    bad_files = np.unique(file_of[bad])
    bad_pos = np.flatnonzero(bad)
    for i in bad_files:
        in_file = file_of == i
        path = paths[i]
        keep = frame.loc[in_file & ~bad, list(contract.columns)]
        rows = result.bad.loc[file_of[bad_pos] == i]
        io.atomic_write_csv(rows, quarantine_path_for(path))
        io.atomic_write_csv(keep, path)
