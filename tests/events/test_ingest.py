"""Ingestion on a real event store into a copy of the smoke data set.

Times are fixed: the data set's last span is 2026-01-14; "now" is 2026-01-15 12:00 UTC,
with the default lateness window of two days.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import time

import pandas as pd
import pytest

from aiqleads import contracts, layout
from aiqleads.data.dataset_validation import validate_dataset
from aiqleads.events import ingest as ingest_lib
from aiqleads.events.log import EventLog, EventLogError
from aiqleads.events.records import FEEDBACK_STREAM, Feedback, Impression

NOW = dt.datetime(2026, 1, 15, 12, tzinfo=dt.timezone.utc).timestamp()
NEW_DAY = dt.date(2026, 1, 15)
LAST_DAY = dt.date(2026, 1, 14)


@pytest.fixture
def data(tmp_path, smoke_dataset):
    root = tmp_path / "data"
    shutil.copytree(smoke_dataset, root)
    return root


def ts(day: dt.date, seconds: int) -> float:
    return dt.datetime.combine(day, dt.time(), dt.timezone.utc).timestamp() + seconds


def imp(rid: str, user: str, leads: tuple[str, ...], at: float) -> Impression:
    return Impression(
        request_id=rid,
        ts=at,
        user_id=user,
        model_version=5,
        variant="stable",
        k=len(leads),
        lead_ids=leads,
        scores=tuple(0.9 - 0.1 * i for i in range(len(leads))),
        cache="miss",
        features={
            "user_latitude": 47.61,
            "user_longitude": -122.33,
            "region": ["seattle-01"] * len(leads),
            "price": [500000.0] * len(leads),
        },
    )


def fb(fid: str, rid: str, user: str, lead: str, event: str, at: float, issued: float) -> Feedback:
    return Feedback(fid, rid, at, user, lead, event, 5, "stable", issued)


def run(data, log: EventLog, now: float = NOW) -> ingest_lib.IngestSummary:
    return ingest_lib.ingest(data, log, now=lambda: now)


def events_of(data, day: dt.date) -> pd.DataFrame:
    return pd.read_csv(layout.table_path(data, contracts.EVENTS, day), dtype=str).fillna("")


def test_feedback_lands_on_its_day_once_and_passes_the_contracts(data, event_log):
    at = ts(NEW_DAY, 3600)
    event_log.append_impressions([imp("r1", "u000001", ("l000001", "l000003"), at)])
    event_log.append_feedback(fb("f1", "r1", "u000001", "l000001", "view", at + 5, at))
    event_log.append_feedback(fb("f2", "r1", "u000001", "l000001", "click", at + 9, at))

    summary = run(data, event_log)

    assert (summary.feedback_read, summary.written, summary.impressions) == (2, 2, 1)
    rows = events_of(data, NEW_DAY)
    assert rows.to_dict("records") == [
        {"event_id": "f1", "user_id": "u000001", "lead_id": "l000001", "event_type": "view",
         "timestamp": "2026-01-15T01:00:05Z", "request_id": "r1"},
        {"event_id": "f2", "user_id": "u000001", "lead_id": "l000001", "event_type": "click",
         "timestamp": "2026-01-15T01:00:09Z", "request_id": "r1"},
    ]  # fmt: skip
    # The new day got the latest market rows, dated to it, so the span is complete.
    market = pd.read_csv(layout.table_path(data, contracts.MARKET, NEW_DAY), dtype=str)
    before = pd.read_csv(layout.table_path(data, contracts.MARKET, LAST_DAY), dtype=str)
    assert (market[contracts.DATE] == "2026-01-15").all()
    assert market[contracts.REGION].tolist() == before[contracts.REGION].tolist()
    manifest = json.loads((data / layout.MANIFEST).read_text())
    assert manifest["ingested"]["market_carried_forward"] == ["2026-01-15"]
    assert manifest["spans"]["last"] == "2026-01-15"
    validate_dataset(data)  # raises on any contract violation

    again = run(data, event_log)
    assert (again.feedback_read, again.written) == (0, 0)
    assert len(events_of(data, NEW_DAY)) == 2


def test_late_events_land_on_their_own_day_within_the_window(data, event_log):
    before = len(events_of(data, LAST_DAY))
    at = ts(LAST_DAY, 80_000)  # the day closed 12 h before "now": within two days
    event_log.append_feedback(fb("late1", "r9", "u000002", "l000005", "view", at, at - 10))
    summary = run(data, event_log)
    assert summary.written == 1
    rows = events_of(data, LAST_DAY)
    assert len(rows) == before + 1
    assert rows["timestamp"].is_monotonic_increasing  # appended in time order
    assert not layout.table_path(data, contracts.EVENTS, NEW_DAY).exists()


def test_bad_feedback_is_quarantined_with_its_reason(data, event_log):
    at = ts(NEW_DAY, 100)
    old = ts(dt.date(2026, 1, 10), 100)  # that day closed four days before "now"
    event_log.append_impressions([imp("r1", "u000001", ("l000001",), at)])
    for record in (
        fb("a", "r1", "nobody", "l000001", "view", at, at),
        fb("b", "r1", "u000001", "l999999", "view", at, at),
        fb("c", "r1", "u000001", "l000002", "view", at, at),  # not in the answer
        fb("d", "r2", "u000001", "l000002", "view", old, old),
        fb("e", "r3", "u000003", "l000004", "click", at, at),  # no impression: still kept
    ):
        event_log.append_feedback(record)

    summary = run(data, event_log)

    assert dict(summary.quarantined) == {
        ingest_lib.UNKNOWN_USER: 1,
        ingest_lib.UNKNOWN_LEAD: 1,
        ingest_lib.NOT_SHOWN: 1,
        ingest_lib.LATE: 1,
    }
    assert (summary.written, summary.without_impression) == (1, 1)
    assert events_of(data, NEW_DAY)["event_id"].tolist() == ["e"]
    quarantined = [
        json.loads(line)
        for path in sorted((data / ingest_lib.QUARANTINE_DIR).glob("*.jsonl"))
        for line in path.read_text().splitlines()
    ]
    assert {(q["feedback_id"], q["reason"]) for q in quarantined} == {
        ("a", ingest_lib.UNKNOWN_USER),
        ("b", ingest_lib.UNKNOWN_LEAD),
        ("c", ingest_lib.NOT_SHOWN),
        ("d", ingest_lib.LATE),
    }


class _CrashBeforeAck(EventLog):
    """Dies once, after the spans were written and before the log hears of it."""

    crashed = False

    def ack(self, stream, group, entry_ids):
        if stream == FEEDBACK_STREAM and not self.crashed:
            type(self).crashed = True
            raise EventLogError("simulated crash before the acknowledgement")
        super().ack(stream, group, entry_ids)


def test_a_crash_between_write_and_ack_adds_nothing_twice(data, event_store):
    at = ts(NEW_DAY, 7200)
    log = _CrashBeforeAck(event_store.url)
    for i in range(50):
        log.append_feedback(fb(f"x{i}", f"r{i}", "u000004", "l000006", "view", at + i, at))
    with pytest.raises(EventLogError, match="simulated crash"):
        run(data, log)
    assert len(events_of(data, NEW_DAY)) == 50  # written, not acknowledged

    summary = run(data, log)  # the pending entries come again
    assert (summary.feedback_read, summary.written, summary.duplicates) == (50, 0, 50)
    assert events_of(data, NEW_DAY)["event_id"].tolist() == [f"x{i}" for i in range(50)]
    log.close()


def test_serving_logs_hold_each_engagement_with_its_answers_features(data, event_log):
    at = ts(NEW_DAY, 60)
    answer = imp("r1", "u000001", ("l000001", "l000003"), at)
    event_log.append_impressions([answer, answer])  # the same answer logged twice
    event_log.append_feedback(fb("v1", "r1", "u000001", "l000003", "view", at + 1, at))
    event_log.append_feedback(fb("v2", "r7", "u000002", "l000003", "view", at + 1, at))  # no answer
    summary = run(data, event_log)
    assert (summary.impressions, summary.written) == (1, 2)
    kept = (data / ingest_lib.SERVING_LOGS_DIR / "impressions" / "2026-01-15.jsonl").read_text()
    assert [Impression.decode(line.encode()) for line in kept.splitlines()] == [answer]
    lines = (data / ingest_lib.SERVING_LOGS_DIR / "2026-01-15.jsonl").read_text().splitlines()
    (row,) = [json.loads(line) for line in lines]  # only the engagement whose answer is known
    assert (row["feedback_id"], row["lead_id"], row["rank"], row["score"]) == (
        "v1",
        "l000003",
        1,
        0.8,
    )
    assert row["features"] == {
        "user_latitude": 47.61,
        "user_longitude": -122.33,
        "region": "seattle-01",
        "price": 500000.0,
    }

    # A feedback ingested in a later run still finds its answer (kept on disk).
    event_log.append_feedback(fb("c1", "r1", "u000001", "l000001", "click", at + 5, at))
    later = run(data, event_log)
    assert (later.written, later.without_impression) == (1, 0)
    lines = (data / ingest_lib.SERVING_LOGS_DIR / "2026-01-15.jsonl").read_text().splitlines()
    assert [json.loads(line)["feedback_id"] for line in lines] == ["v1", "c1"]


def test_old_entries_are_trimmed_after_ingestion(data, event_log):
    at = ts(NEW_DAY, 60)
    event_log.append_feedback(fb("t1", "r1", "u000001", "l000001", "view", at, at))
    run(data, event_log)
    assert event_log.length(FEEDBACK_STREAM) == 1  # younger than the retention
    # Stream ids are the store's clock: ten days after it, the entry is past the retention.
    summary = run(data, event_log, now=time.time() + 10 * 86_400)
    assert summary.trimmed == 1 and event_log.length(FEEDBACK_STREAM) == 0


def test_not_a_data_set_is_a_clear_error(tmp_path, event_log):
    from aiqleads.errors import DataError

    with pytest.raises(DataError, match="not a data set"):
        run(tmp_path, event_log)
