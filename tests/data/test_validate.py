"""Contract validation on small malformed files: errors name file, line and column;
quarantine keeps every good row and loses none."""

from __future__ import annotations

import pathlib
import shutil

import pandas as pd
import pytest

from aiqleads import contracts
from aiqleads.data import io, validate
from aiqleads.errors import AiqleadsError, DataError

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "testdata" / "contracts"

# leads_malformed.csv, by line (header = line 1): what is wrong, derived by reading the file.
LEADS_BAD = {
    3: ("latitude", "above the maximum 90"),
    4: ("longitude", "below the minimum -180"),
    5: ("price", "not a finite number"),
    6: ("bedrooms", "not an integer"),
    7: ("lead_id", "duplicate key"),
    8: ("listed_date", "not a valid date"),
    9: ("region", "empty, but the column is required"),
}
LEADS_GOOD_IDS = ["l1", "l8"]


def _copy(tmp_path: pathlib.Path, name: str) -> pathlib.Path:
    target = tmp_path / name
    shutil.copy(FIXTURES / name, target)
    return target


def test_valid_file_passes_with_nulls_where_allowed():
    report = validate.validate_file(FIXTURES / "leads_valid.csv", contracts.LEADS)
    assert report.rows == 3 and report.bad_rows == 0
    assert list(report.good[contracts.LEAD_ID]) == ["l1", "l2", "l3"]
    assert report.good.loc[1, contracts.PRICE] == ""  # null kept, not dropped or invented


def test_missing_column_names_file_and_column(tmp_path):
    path = _copy(tmp_path, "leads_missing_column.csv")
    with pytest.raises(DataError) as err:
        validate.validate_file(path, contracts.LEADS, quarantine=True)
    message = str(err.value)
    assert str(path) in message and "line 1" in message and "missing column(s) status" in message
    assert isinstance(err.value, AiqleadsError)


def test_extra_column_is_rejected():
    frame = pd.read_csv(FIXTURES / "leads_valid.csv", dtype=str, keep_default_na=False)
    frame["colour"] = "red"
    with pytest.raises(DataError, match="unexpected column"):
        validate.validate_frame(frame, contracts.LEADS, source="frame")


def test_malformed_rows_raise_with_file_line_and_column():
    path = FIXTURES / "leads_malformed.csv"
    with pytest.raises(DataError) as err:
        validate.validate_file(path, contracts.LEADS)
    message = str(err.value)
    assert "\n" not in message
    assert f"{path} line 3, column latitude: above the maximum 90" in message
    assert "7 of 9 rows" in message
    found = {(v.line, v.column) for v in err.value.violations}
    for line, (column, _) in LEADS_BAD.items():
        assert (line, column) in found
    assert (9, "status") in found  # 'gone' is not a lead status
    assert all(v.source == str(path) for v in err.value.violations)


def test_quarantine_keeps_every_good_row_and_loses_nothing(tmp_path):
    path = _copy(tmp_path, "leads_malformed.csv")
    original = io.read_text_table(path)
    report = validate.validate_file(path, contracts.LEADS, quarantine=True, rewrite=True)
    assert list(report.good[contracts.LEAD_ID]) == LEADS_GOOD_IDS

    quarantined = io.read_text_table(validate.quarantine_path_for(path))
    kept = io.read_text_table(path)
    assert list(quarantined[validate.LINE_COLUMN].astype(int)) == sorted(LEADS_BAD)
    for _, row in quarantined.iterrows():
        column, text = LEADS_BAD[int(row[validate.LINE_COLUMN])]
        assert f"{column}: {text}" in row[validate.REASON_COLUMN]
    # Every input row is in exactly one of the two files, cell for cell.
    assert len(kept) + len(quarantined) == len(original)
    rebuilt = pd.concat(
        [kept.assign(line=[2, 10]), quarantined.drop(columns=validate.REASON_COLUMN)]
    ).astype({"line": int})
    rebuilt = rebuilt.sort_values("line")[list(contracts.LEADS.columns)].reset_index(drop=True)
    pd.testing.assert_frame_equal(rebuilt, original)


def test_events_unknown_type_bad_timestamp_and_long_request_id(tmp_path):
    path = _copy(tmp_path, "events_malformed.csv")
    report = validate.validate_file(path, contracts.EVENTS, quarantine=True)
    assert list(report.good[contracts.EVENT_ID]) == ["e1", "e4"]
    reasons = dict(
        zip(report.bad[contracts.EVENT_ID], report.bad[validate.REASON_COLUMN], strict=True)
    )
    assert reasons["e2"].startswith("event_type: not one of view, click, inquiry, purchase")
    assert "timestamp: not a valid timestamp" in reasons["e3"]
    assert "request_id: longer than 64 characters" in reasons["e5"]
    assert path.read_text().count("\n") == 6  # without rewrite the file is left as it was


def test_dataframe_input_with_numbers_and_nans():
    frame = pd.DataFrame(
        {
            contracts.REGION: ["r1", "r1", "r2"],
            contracts.DATE: ["2026-01-01", "2026-01-01", "2026-01-01"],
            contracts.DEMAND: [3.0, 4.0, -1.0],
            contracts.MEDIAN_PRICE: [float("nan"), 100.0, 100.0],
            contracts.INVENTORY: [1, 2, 3],
            contracts.PRICE_TREND: [0.0, 0.1, 0.0],
        }
    )
    report = validate.validate_frame(frame, contracts.MARKET)
    assert report.rows == 3
    bad = dict(
        zip(report.bad[validate.LINE_COLUMN], report.bad[validate.REASON_COLUMN], strict=True)
    )
    assert bad == {
        3: "region,date: duplicate key, already used on an earlier row",
        4: "demand: below the minimum 0",
    }
