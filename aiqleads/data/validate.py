"""Contract validation of raw tables: a file or a frame, one table or a whole data set.

Every check is vectorised over the column. A row breaks the contract when a required value is
null, a value does not parse as the column's kind, falls outside the bounds, is not in the
domain, is too long, or repeats a key already seen on an earlier valid row. Errors name the
file, the line (1-based, the header is line 1) and the column.

Without quarantine the first violations raise `DataError`. With ``quarantine=True`` the bad
rows go to ``<file>.quarantine.csv`` (the original cells plus ``line`` and ``reason``) and the
good rows are kept: every input row ends up in exactly one of the two.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Sequence

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from aiqleads import contracts
from aiqleads.contracts import Contract, Field, Kind
from aiqleads.data import io
from aiqleads.errors import DataError

MAX_REPORTED = 20
"""How many violations an error or a report lists (the counts cover all of them)."""

QUARANTINE_SUFFIX = ".quarantine.csv"
LINE_COLUMN = "line"
REASON_COLUMN = "reason"
HEADER_LINES = 1

_DATE_RE = r"\d{4}-\d{2}-\d{2}"
_TIMESTAMP_RE = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z"
_INT_RE = r"[+-]?\d+"

RowCheck = tuple[str, NDArray[np.bool_], str]
"""A rule over a table's rows: (column, bad-row mask, message)."""


@dataclasses.dataclass(frozen=True)
class Violation:
    """One broken rule: where (file, line, column) and what."""

    source: str
    line: int
    column: str
    message: str

    def __str__(self) -> str:
        where = f"{self.source} line {self.line}" if self.line else self.source
        return f"{where}, column {self.column}: {self.message}"


class ContractViolationError(DataError):
    """Rows of a table break its contract; ``violations`` lists the first of them."""

    def __init__(self, message: str, violations: Sequence[Violation] = ()) -> None:
        super().__init__(message)
        self.violations = list(violations)


@dataclasses.dataclass
class TableReport:
    """The outcome of validating one table."""

    source: str
    contract: str
    rows: int
    good: pd.DataFrame
    bad: pd.DataFrame
    violations: list[Violation]
    bad_mask: NDArray[np.bool_]
    files: int = 1
    quarantine_path: pathlib.Path | None = None

    @property
    def bad_rows(self) -> int:
        return len(self.bad)


def quarantine_path_for(path: pathlib.Path) -> pathlib.Path:
    path = pathlib.Path(path)
    return path.with_name(path.name + QUARANTINE_SUFFIX)


def as_text_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` with every cell as text, nulls as empty strings."""
    out = {}
    for col in frame.columns:
        series = frame[col]
        if series.dtype == object and not series.hasnans:
            out[col] = series  # already text (as read by io.read_text_table)
        elif series.dtype == object or pd.api.types.is_string_dtype(series):
            out[col] = series.where(series.notna(), "").astype(str)
        else:
            text = series.astype(str)
            out[col] = text.where(series.notna(), "")
    return pd.DataFrame(out, index=frame.index)


def check_columns(columns: list[str], contract: Contract, source: str) -> None:
    """Missing or extra columns make the whole file unreadable: raise at once."""
    missing = [c for c in contract.columns if c not in columns]
    extra = [c for c in columns if c not in contract.columns]
    dupes = sorted({c for c in columns if columns.count(c) > 1})
    problems = []
    if missing:
        problems.append(f"missing column(s) {', '.join(missing)}")
    if extra:
        problems.append(f"unexpected column(s) {', '.join(extra)}")
    if dupes:
        problems.append(f"repeated column(s) {', '.join(dupes)}")
    if problems:
        raise DataError(
            f"{source} line 1 (header): {'; '.join(problems)}; the {contract.name} contract "
            f"has columns {', '.join(contract.columns)}"
        )


def _field_problems(values: pd.Series, field: Field) -> list[tuple[NDArray[np.bool_], str]]:
    """(mask of bad rows, message) pairs for one column of text values."""
    problems: list[tuple[NDArray[np.bool_], str]] = []
    null = (values == "").to_numpy()
    if not field.nullable:
        problems.append((null, "empty, but the column is required"))
    present = ~null
    lengths = values.str.len().to_numpy()
    too_long = present & (lengths > field.max_length)
    problems.append((too_long, f"longer than {field.max_length} characters"))
    checkable = present & ~too_long

    if field.kind in (Kind.INT, Kind.FLOAT):
        numbers = pd.to_numeric(values.where(checkable, ""), errors="coerce").to_numpy(float)
        if field.kind is Kind.INT:
            bad_type = checkable & ~values.str.fullmatch(_INT_RE).to_numpy(bool)
            type_msg = "not an integer"
        else:
            bad_type = checkable & ~np.isfinite(numbers)
            type_msg = "not a finite number"
        problems.append((bad_type, type_msg))
        ok = checkable & ~bad_type
        if field.min_value is not None:
            problems.append(
                (ok & (numbers < field.min_value), f"below the minimum {field.min_value:g}")
            )
        if field.max_value is not None:
            problems.append(
                (ok & (numbers > field.max_value), f"above the maximum {field.max_value:g}")
            )
    elif field.kind in (Kind.DATE, Kind.TIMESTAMP):
        pattern, fmt, shape = (
            (_DATE_RE, "%Y-%m-%d", "YYYY-MM-DD")
            if field.kind is Kind.DATE
            else (_TIMESTAMP_RE, "%Y-%m-%dT%H:%M:%SZ", "YYYY-MM-DDTHH:MM:SSZ")
        )
        shaped = values.str.fullmatch(pattern).to_numpy(bool)
        parsed = pd.to_datetime(values.where(checkable & shaped, ""), format=fmt, errors="coerce")
        bad = checkable & (~shaped | parsed.isna().to_numpy())
        problems.append((bad, f"not a valid {field.kind.value} ({shape})"))
    if field.domain is not None:
        unknown = checkable & ~values.isin(field.domain).to_numpy()
        problems.append((unknown, f"not one of {', '.join(field.domain)}"))
    return problems


def _row_problems(
    text: pd.DataFrame, contract: Contract
) -> tuple[NDArray[np.bool_], list[RowCheck]]:
    """The bad-row mask and the (column, mask, message) checks that failed."""
    failed: list[RowCheck] = []
    bad = np.zeros(len(text), dtype=bool)
    for field in contract.fields:
        for mask, message in _field_problems(text[field.name], field):
            if mask.any():
                failed.append((field.name, mask, message))
                bad |= mask
    # Duplicate keys among the otherwise valid rows: the first one stays, later ones are bad.
    key = list(contract.key)
    valid = text.loc[~bad, key]
    dup = valid.duplicated(keep="first")
    if dup.any():
        mask = np.zeros(len(text), dtype=bool)
        mask[np.flatnonzero(~bad)[dup.to_numpy()]] = True
        failed.append((",".join(key), mask, "duplicate key, already used on an earlier row"))
        bad |= mask
    return bad, failed


def validate_frame(
    frame: pd.DataFrame,
    contract: Contract,
    source: str = "<frame>",
    extra_checks: list[RowCheck] | None = None,
    locations: tuple[NDArray[np.int64], NDArray[np.int64], list[str]] | None = None,
) -> TableReport:
    """Validate a frame against ``contract``; rows are numbered as lines of its CSV file.

    ``extra_checks`` adds (column, bad-row mask, message) rules, e.g. referential ones.
    ``locations`` = (file index per row, line per row, file names) when the frame joins
    several files (keys must then be unique across all of them).
    Nothing is raised for bad rows: the report carries the good and bad rows.
    """
    columns = [str(c) for c in frame.columns]
    check_columns(columns, contract, source)
    text = as_text_frame(frame).reset_index(drop=True)
    bad, failed = _row_problems(text, contract)
    for column, mask, message in extra_checks or []:
        if mask.any():
            failed.append((column, mask, message))
            bad |= mask
    if locations is None:
        file_of = np.zeros(len(text), dtype=np.int64)
        line_of = np.arange(len(text)) + 1 + HEADER_LINES
        names = [source]
    else:
        file_of, line_of, names = locations
    reasons = np.full(len(text), "", dtype=object)
    violations: list[Violation] = []
    for column, mask, message in failed:
        rows = np.flatnonzero(mask)
        reasons[rows] = reasons[rows] + f"{column}: {message}; "
        for row in rows[:MAX_REPORTED]:
            value = text.at[row, column] if column in text.columns else ""
            shown = f" (value {value[:40]!r})" if column in text.columns else ""
            where = names[file_of[row]]
            violations.append(Violation(where, int(line_of[row]), column, message + shown))
    violations.sort(key=lambda v: (v.source, v.line, v.column))
    bad_rows = text.loc[bad].copy()
    bad_rows.insert(0, LINE_COLUMN, line_of[bad])
    bad_rows[REASON_COLUMN] = [r.rstrip("; ") for r in reasons[bad]]
    good = text.loc[~bad, list(contract.columns)].reset_index(drop=True)
    return TableReport(
        source=source,
        contract=contract.name,
        rows=len(text),
        good=good,
        bad=bad_rows.reset_index(drop=True),
        violations=violations[:MAX_REPORTED],
        bad_mask=bad,
        files=len(names),
    )


def raise_for_violations(report: TableReport) -> None:
    """Raise a one-line DataError naming the first violations when the table has bad rows."""
    if not report.bad_rows:
        return
    shown = "; ".join(str(v) for v in report.violations[:3])
    more = report.bad_rows - min(3, report.bad_rows)
    tail = f" (and more: {report.bad_rows} bad rows in all)" if more > 0 else ""
    raise ContractViolationError(
        f"{report.source}: {report.bad_rows} of {report.rows} rows break the {report.contract} "
        f"contract: {shown}{tail}; fix them or rerun with --quarantine",
        report.violations,
    )


def write_quarantine(report: TableReport, path: pathlib.Path, keep_good: bool) -> None:
    """Move bad rows of the file at ``path`` to its quarantine file; rewrite it with the good
    rows when ``keep_good`` (so the data set stays usable)."""
    qpath = quarantine_path_for(path)
    if report.bad_rows:
        io.atomic_write_csv(report.bad, qpath)
        report.quarantine_path = qpath
        if keep_good:
            io.atomic_write_csv(report.good, path)


def validate_file(
    path: pathlib.Path,
    contract: Contract,
    quarantine: bool = False,
    extra_checks: list[RowCheck] | None = None,
    rewrite: bool = False,
) -> TableReport:
    """Validate one CSV file; raise on violations unless ``quarantine``.

    With ``quarantine`` the bad rows go to ``<file>.quarantine.csv`` and the report's ``good``
    frame holds the rest; with ``rewrite`` the file itself is rewritten with the good rows.
    """
    path = pathlib.Path(path)
    frame = io.read_text_table(path)
    report = validate_frame(frame, contract, source=str(path), extra_checks=extra_checks)
    if quarantine:
        write_quarantine(report, path, keep_good=rewrite)
    else:
        raise_for_violations(report)
    return report


def contract_for_file(path: pathlib.Path) -> Contract:
    """The contract a file name stands for (leads.csv -> LEADS, ...)."""
    name = pathlib.Path(path).name
    for contract in contracts.ALL_CONTRACTS:
        if contract.file_name == name:
            return contract
    known = ", ".join(c.file_name for c in contracts.ALL_CONTRACTS)
    raise DataError(f"{path}: unknown table; expected one of {known}")
