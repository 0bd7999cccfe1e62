"""Reading and writing data-set files: contract-ordered CSV tables and the manifest.

Tables are read as text (every cell a ``str``, empty string for null) so validation sees
exactly what is in the file; writers put columns in contract order so the same data gives
the same bytes.
"""

from __future__ import annotations

import csv
import json
import os
import pathlib
import shutil
import tempfile
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from aiqleads import contracts, layout
from aiqleads.errors import DataError


def read_text_table(path: pathlib.Path) -> pd.DataFrame:
    """Read a CSV file with every cell as text (null -> empty string)."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    return read_text_csv(path, str(path))


def read_text_csv(source: object, name: str) -> pd.DataFrame:
    """A CSV table with every cell as text (null -> empty string): ``source`` is a path or
    an open text file (``tf.io.gfile.GFile`` for ``gs://`` and ``s3://``); ``name`` names
    it in errors."""
    try:
        return pd.read_csv(
            source, dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8"
        )
    except pd.errors.EmptyDataError as e:
        raise DataError(f"{name}: the file is empty (expected a CSV header line)") from e
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise DataError(f"{name}: not a readable UTF-8 CSV file ({e})") from e


def read_text_tables(
    paths: list[pathlib.Path], columns: tuple[str, ...]
) -> tuple[list[list[str]], NDArray[np.int64], pd.DataFrame]:
    """Read many small CSV files fast (csv module) into one text frame with ``columns``.

    Returns each file's header, each file's row count and the joined rows. A file whose
    header lacks one of ``columns`` contributes its header only (the caller reports it).
    """
    headers, counts, rows = [], [], []
    for path in paths:
        try:
            with open(path, encoding="utf-8", newline="") as f:
                body = list(csv.reader(f))
        except FileNotFoundError as e:
            raise DataError(f"{path}: no such file") from e
        except (UnicodeDecodeError, csv.Error) as e:
            raise DataError(f"{path}: not a readable UTF-8 CSV file ({e})") from e
        if not body:
            raise DataError(f"{path}: the file is empty (expected a CSV header line)")
        header, body = body[0], body[1:]
        headers.append(header)
        ragged = next((i for i, r in enumerate(body) if len(r) != len(header)), None)
        if ragged is not None:
            raise DataError(
                f"{path} line {ragged + 2}: {len(body[ragged])} fields, the header has {len(header)}"
            )
        if not set(columns) <= set(header):
            counts.append(0)
            continue
        if tuple(header) != tuple(columns):
            pick = [header.index(c) for c in columns]
            body = [[r[i] for i in pick] for r in body]
        counts.append(len(body))
        rows.extend(body)
    frame = pd.DataFrame(rows, columns=list(columns), dtype=object)
    return headers, np.asarray(counts, dtype=np.int64), frame


def csv_lines(frame: pd.DataFrame, columns: tuple[str, ...]) -> tuple[str, NDArray[np.object_]]:
    """The CSV header line and one text line per row (formatted once, for slicing).

    All-text columns whose cells need no quoting are joined directly (the events table of a
    large data set); anything else goes through pandas' CSV writer.
    """
    sub = frame.loc[:, list(columns)]
    header = ",".join(columns) + "\n"
    if _plain_text(sub):
        cols = [sub[c].tolist() for c in columns]
        lines = [",".join(row) + "\n" for row in zip(*cols, strict=True)]
        return header, np.array(lines, dtype=object)
    text = sub.to_csv(index=False, lineterminator="\n")
    lines = text.split("\n")
    return lines[0] + "\n", np.array([line + "\n" for line in lines[1:-1]], dtype=object)


def _plain_text(frame: pd.DataFrame) -> bool:
    """True when every column holds str cells that CSV writes unquoted (no delimiter, quote
    or line break; more than one column, so an empty cell needs no quotes either)."""
    if len(frame.columns) < 2:
        return False
    for column in frame.columns:
        values = frame[column]
        if values.dtype != object or pd.api.types.infer_dtype(values, skipna=False) != "string":
            return False
        joined = "\x00".join(values)
        if any(ch in joined for ch in (",", '"', "\n", "\r")):
            return False
    return True


def write_lines(path: pathlib.Path, header: str, lines: NDArray[np.object_]) -> None:
    """Write a header and pre-formatted lines through a temporary file."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as out:
        out.write(header)
        out.write("".join(lines))
    os.replace(tmp, path)


def write_table(frame: pd.DataFrame, path: pathlib.Path, contract: contracts.Contract) -> int:
    """Write ``frame`` with the contract's columns in order; returns the row count.

    Written to a temporary file beside ``path`` first, then renamed, so a reader never sees a
    half-written table.
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    missing = [c for c in contract.columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{contract.name}: frame lacks columns {missing}")
    atomic_write_csv(frame.loc[:, list(contract.columns)], path)
    return len(frame)


def atomic_write_csv(frame: pd.DataFrame, path: pathlib.Path) -> None:
    """Write a frame as CSV (no index, '\\n' line ends) through a temporary file."""
    path = pathlib.Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            frame.to_csv(out, index=False, lineterminator="\n")
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise


def write_manifest(root: pathlib.Path, manifest: dict[str, Any]) -> pathlib.Path:
    """Write ``manifest.json`` (sorted keys, stable bytes)."""
    path = pathlib.Path(root) / layout.MANIFEST
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def read_manifest(root: pathlib.Path) -> dict[str, Any]:
    """The data set's manifest, or an empty dict when it has none."""
    path = pathlib.Path(root) / layout.MANIFEST
    if not path.is_file():
        return {}
    try:
        manifest: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: unreadable manifest ({e})") from e
    return manifest


def check_dataset_dir(root: pathlib.Path) -> pathlib.Path:
    """The data-set root, or a DataError that says what is missing."""
    root = pathlib.Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such data-set directory")
    for contract in (contracts.LEADS, contracts.USERS):
        if not layout.table_path(root, contract).is_file():
            raise DataError(
                f"{root}: not a data set (no {contract.file_name}); create one with "
                "`aiqleads data synth` or `aiqleads data import`"
            )
    return root


def prepare_output_dir(out: pathlib.Path, overwrite: bool) -> pathlib.Path:
    """Make ``out`` ready for a new data set; refuse to mix with an existing one."""
    out = pathlib.Path(out)
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise DataError(f"{out}: not empty; choose a new --out or pass --overwrite")
        if not (out / layout.MANIFEST).is_file():
            raise DataError(f"{out}: not empty and not a data set; refusing to overwrite it")
        _remove_dataset(out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def _remove_dataset(root: pathlib.Path) -> None:
    for name in (layout.SPANS_DIR, layout.GROUND_TRUTH_DIR):
        shutil.rmtree(root / name, ignore_errors=True)
    for child in root.iterdir():
        if child.is_file() and (child.suffix == ".csv" or child.name == layout.MANIFEST):
            child.unlink()
