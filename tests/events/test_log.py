"""The event log on a real redis-server: deduplication, durability through a crash, refusals."""

from __future__ import annotations

import pytest
import redis

from aiqleads.events.log import EventLog, EventLogError, redact
from aiqleads.events.records import (
    FEEDBACK_ID_PREFIX,
    FEEDBACK_STREAM,
    IMPRESSIONS_STREAM,
    Feedback,
    Impression,
    default_feedback_id,
)


def feedback(i: int, feedback_id: str | None = None) -> Feedback:
    return Feedback(
        feedback_id=feedback_id or f"fb{i}",
        request_id=f"r{i}",
        ts=1_765_000_000.0 + i,
        user_id="u000001",
        lead_id="l000001",
        event_type="click",
        model_version=3,
        variant="stable",
        issued_at=1_765_000_000.0,
    )


def impression(i: int) -> Impression:
    return Impression(
        request_id=f"r{i}",
        ts=1_765_000_000.0 + i,
        user_id="u000001",
        model_version=3,
        variant="stable",
        k=2,
        lead_ids=("l000001", "l000002"),
        scores=(0.9, 0.5),
        cache="miss",
        features={"user_latitude": 47.6, "region": ["seattle-01", "seattle-02"]},
    )


def test_a_feedback_id_is_recorded_once(event_log):
    first = event_log.append_feedback(feedback(1))
    again = event_log.append_feedback(feedback(2, feedback_id="fb1"))  # same id, other content
    assert first is not None and again is None
    entries = list(event_log.range(FEEDBACK_STREAM))
    assert [Feedback.decode(e.raw) for e in entries] == [feedback(1)]


def test_records_round_trip_through_the_streams(event_log):
    event_log.append_impressions([impression(1), impression(2)])
    got = [Impression.decode(e.raw) for e in event_log.range(IMPRESSIONS_STREAM)]
    assert got == [impression(1), impression(2)]
    rows = got[0].feature_rows()
    assert rows == [
        {"lead_id": "l000001", "user_latitude": 47.6, "region": "seattle-01"},
        {"lead_id": "l000002", "user_latitude": 47.6, "region": "seattle-02"},
    ]


def test_range_pages_through_long_streams(event_log):
    for i in range(25):
        event_log.append_feedback(feedback(i))
    ids = [Feedback.decode(e.raw).feedback_id for e in event_log.range(FEEDBACK_STREAM, batch=7)]
    assert ids == [f"fb{i}" for i in range(25)]


def test_acknowledged_feedback_survives_a_crash_of_the_store(event_store, event_log):
    ids = [event_log.append_feedback(feedback(i)) for i in range(200)]
    assert all(ids)
    event_store.kill()  # SIGKILL right after the last acknowledgement: no clean shutdown
    event_store.start()
    survived = {Feedback.decode(e.raw).feedback_id for e in event_log.range(FEEDBACK_STREAM)}
    assert survived == {f"fb{i}" for i in range(200)}
    assert event_log.append_feedback(feedback(0)) is None  # the dedup marker survived too


def test_a_full_store_refuses_and_leaves_nothing_half_written(make_event_store):
    store = make_event_store("full", max_memory_mb=16)
    log = EventLog(store.url)
    try:
        filler = redis.Redis(port=store.port)
        with pytest.raises(redis.exceptions.ResponseError, match="maxmemory"):
            for i in range(100_000):
                filler.set(f"pad{i}", "x" * 1000)
        with pytest.raises(EventLogError, match="refused"):
            log.append_feedback(feedback(1))
        assert filler.exists(FEEDBACK_ID_PREFIX + "fb1") == 0  # no marker without the entry
        assert log.length(FEEDBACK_STREAM) == 0
    finally:
        log.close()


def test_store_down_is_an_event_log_error(event_store, event_log):
    event_store.stop()
    with pytest.raises(EventLogError):
        event_log.append_feedback(feedback(1))
    with pytest.raises(EventLogError, match="unreachable"):
        event_log.ping()


def test_default_feedback_id_is_one_per_answer_lead_and_type():
    a = default_feedback_id("r1", "l1", "click")
    assert a == default_feedback_id("r1", "l1", "click")
    assert (
        len({a, default_feedback_id("r1", "l1", "view"), default_feedback_id("r2", "l1", "click")})
        == 3
    )
    with pytest.raises(ValueError):
        default_feedback_id("r1", "l1", "like")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:s3cret@host:6379/0", "redis://:***@host:6379/0"),
        ("redis://user:s3cret@host:6379/0", "redis://user:***@host:6379/0"),
        ("redis://host:6379/0", "redis://host:6379/0"),
    ],
)
def test_urls_are_redacted(url, shown):
    assert redact(url) == shown
