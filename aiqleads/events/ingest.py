"""Ingestion: the event log becomes daily spans under the data contracts, exactly once.

`ingest()` reads the feedback and impression streams through the consumer group
``ingest`` (first what an earlier run was given but did not acknowledge, then new entries),
and for each batch:

1. checks every feedback: a known user and lead (``users.csv``, ``leads.csv``), a lead that
   the answer showed (when its impression is known), a day still open (no older than the
   lateness window); what fails goes to ``quarantine/events/<day>.jsonl`` with its reason;
2. appends the good ones to ``spans/<day>/events.csv`` of their own UTC day, skipping event
   ids the file already holds: ``event_id`` is the feedback id, so a batch read twice (a
   crash between write and acknowledgement) adds nothing;
3. keeps every answer in ``serving_logs/impressions/<day>.jsonl`` (for the join above, in
   this run or a later one), and writes one row per new engagement with its answer's serving
   features (the request's location, the engaged lead's features) to
   ``serving_logs/<day>.jsonl``: what the pipeline's skew check compares with training's
   positives;
4. acknowledges the batch, then trims what every reader is done with and is older than the
   retention.

A span folder needs a ``market.csv``. A day that only served traffic has none; ingestion
then carries the latest earlier market rows forward to it and records that in the manifest
(a deployment with a market feed writes its own file first, which is never overwritten).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import pathlib
import time
from collections import Counter, defaultdict
from collections.abc import Callable

import orjson
import pandas as pd

from aiqleads import contracts, layout
from aiqleads.data import io
from aiqleads.errors import DataError
from aiqleads.events.log import EventLog, entry_id_at
from aiqleads.events.records import FEEDBACK_STREAM, IMPRESSIONS_STREAM, Feedback, Impression

GROUP = "ingest"
CONSUMER = "ingest-1"
SERVING_LOGS_DIR = layout.SERVING_LOGS_DIR
IMPRESSIONS_DIR = "impressions"  # under SERVING_LOGS_DIR: every answer, for the join
QUARANTINE_DIR = pathlib.Path(layout.EVENTS_QUARANTINE_DIR)
MANIFEST_KEY = "ingested"
DEFAULT_LATENESS_SECONDS = 2 * 86_400
DEFAULT_RETENTION_SECONDS = 2 * 86_400
DEFAULT_BATCH = 20_000

UNKNOWN_USER = "unknown user"
UNKNOWN_LEAD = "unknown lead"
NOT_SHOWN = "lead not in the answer"
LATE = "late: its day closed more than the lateness window ago"
UNREADABLE = "unreadable record"


@dataclasses.dataclass
class IngestSummary:
    """What one ingestion run did."""

    feedback_read: int = 0
    written: int = 0
    duplicates: int = 0
    without_impression: int = 0
    quarantined: Counter[str] = dataclasses.field(default_factory=Counter)
    impressions: int = 0
    days: set[dt.date] = dataclasses.field(default_factory=set)
    market_carried: list[str] = dataclasses.field(default_factory=list)
    trimmed: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return (self.feedback_read + self.impressions) / self.seconds if self.seconds else 0.0

    def lines(self) -> list[str]:
        out = [
            f"feedback: {self.feedback_read:,} read, {self.written:,} written to "
            f"{len(self.days)} span(s), {self.duplicates:,} already there, "
            f"{sum(self.quarantined.values()):,} quarantined",
            f"impressions: {self.impressions:,} to serving logs; "
            f"{self.without_impression:,} feedback without a logged impression (attributed by "
            f"its request id)",
        ]
        for reason, count in sorted(self.quarantined.items()):
            out.append(f"  quarantined, {reason}: {count:,}")
        if self.market_carried:
            out.append(f"market rows carried forward to {', '.join(self.market_carried)}")
        out.append(
            f"{self.feedback_read + self.impressions:,} events in {self.seconds:.1f} s "
            f"({self.rate:,.0f} events/s); {self.trimmed:,} old entries trimmed from the log"
        )
        return out


def _utc_day(ts: float) -> dt.date:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).date()


def _timestamp(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


class _ImpressionIndex:
    """request_id -> the answer, from ``serving_logs/impressions/<day>.jsonl`` (kept across
    runs: a feedback may be ingested days after its answer)."""

    def __init__(self, root: pathlib.Path) -> None:
        self._dir = root / SERVING_LOGS_DIR / IMPRESSIONS_DIR
        self._days: dict[dt.date, dict[str, Impression]] = {}

    def _path(self, day: dt.date) -> pathlib.Path:
        return self._dir / f"{layout.span_name(day)}.jsonl"

    def day(self, day: dt.date) -> dict[str, Impression]:
        if day not in self._days:
            answers: dict[str, Impression] = {}
            path = self._path(day)
            if path.is_file():
                with path.open("rb") as fh:
                    for line in fh:
                        imp = Impression.decode(line)
                        answers[imp.request_id] = imp
            self._days[day] = answers
        return self._days[day]

    def find(self, request_id: str, issued_at: float) -> Impression | None:
        for day in {_utc_day(issued_at), _utc_day(issued_at + 1.0)}:  # an answer at midnight
            imp = self.day(day).get(request_id)
            if imp is not None:
                return imp
        return None

    def write(self, impressions: list[Impression]) -> int:
        """Append the impressions not yet kept; how many were new."""
        by_day: dict[dt.date, list[bytes]] = defaultdict(list)
        for imp in impressions:
            day = _utc_day(imp.ts)
            known = self.day(day)
            if imp.request_id in known:
                continue  # read twice: already kept
            known[imp.request_id] = imp
            by_day[day].append(imp.encode() + b"\n")
        _append_lines(self._dir, by_day)
        return sum(len(lines) for lines in by_day.values())


def _append_lines(directory: pathlib.Path, by_day: dict[dt.date, list[bytes]]) -> None:
    for day, lines in by_day.items():
        path = directory / f"{layout.span_name(day)}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("ab") as out:
            out.write(b"".join(lines))


def _serving_row(fb: Feedback, imp: Impression) -> bytes:
    """One engagement with the serving features of its answer: what the skew check compares
    with training's positives (the user's request location; the engaged lead's features)."""
    rank = imp.lead_ids.index(fb.lead_id)
    features = {k: v for k, v in imp.feature_rows()[rank].items() if k != "lead_id"}
    row = {
        "feedback_id": fb.feedback_id,
        "request_id": fb.request_id,
        "ts": fb.ts,
        "user_id": fb.user_id,
        "lead_id": fb.lead_id,
        "event_type": fb.event_type,
        "model_version": fb.model_version,
        "variant": fb.variant,
        "rank": rank,
        "score": imp.scores[rank],
        "features": features,
    }
    return orjson.dumps(row) + b"\n"


class _Spans:
    """The events tables of the days touched by a run, with their event ids."""

    def __init__(self, root: pathlib.Path) -> None:
        self.root = root
        self._ids: dict[dt.date, set[str]] = {}
        self._new: dict[dt.date, list[dict[str, str]]] = defaultdict(list)

    def ids(self, day: dt.date) -> set[str]:
        if day not in self._ids:
            path = layout.table_path(self.root, contracts.EVENTS, day)
            if path.is_file():
                frame = io.read_text_table(path)
                self._ids[day] = set(frame[contracts.EVENT_ID])
            else:
                self._ids[day] = set()
        return self._ids[day]

    def add(self, day: dt.date, row: dict[str, str]) -> bool:
        ids = self.ids(day)
        if row[contracts.EVENT_ID] in ids:
            return False
        ids.add(row[contracts.EVENT_ID])
        self._new[day].append(row)
        return True

    def flush(self) -> list[dt.date]:
        """Append the new rows to their days' tables (atomically, in time order)."""
        days = sorted(self._new)
        for day in days:
            path = layout.table_path(self.root, contracts.EVENTS, day)
            new = pd.DataFrame(self._new[day], columns=list(contracts.EVENTS.columns))
            if path.is_file():
                new = pd.concat([io.read_text_table(path), new], ignore_index=True)
            new = new.sort_values(contracts.TIMESTAMP, kind="stable")
            io.write_table(new, path, contracts.EVENTS)
        self._new.clear()
        return days


def _carry_market_forward(root: pathlib.Path, days: list[dt.date]) -> list[str]:
    """Give each span without a market.csv the latest earlier day's market rows."""
    carried = []
    for day in days:
        path = layout.table_path(root, contracts.MARKET, day)
        if path.is_file():
            continue
        earlier = [
            d
            for d in layout.list_spans(root)
            if d < day and layout.table_path(root, contracts.MARKET, d).is_file()
        ]
        if earlier:
            rows = io.read_text_table(layout.table_path(root, contracts.MARKET, earlier[-1]))
            rows[contracts.DATE] = day.isoformat()
        else:
            rows = pd.DataFrame(columns=list(contracts.MARKET.columns))
        io.write_table(rows, path, contracts.MARKET)
        carried.append(layout.span_name(day))
    return carried


def _quarantine(root: pathlib.Path, rows: list[tuple[dt.date, dict[str, object]]]) -> None:
    by_day: dict[dt.date, list[bytes]] = defaultdict(list)
    for day, row in rows:
        by_day[day].append(orjson.dumps(row) + b"\n")
    for day, lines in by_day.items():
        path = root / QUARANTINE_DIR / f"{layout.span_name(day)}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("ab") as out:
            out.write(b"".join(lines))


def _ids(root: pathlib.Path, contract: contracts.Contract, column: str) -> set[str]:
    return set(io.read_text_table(layout.table_path(root, contract))[column])


def ingest(
    root: pathlib.Path,
    log: EventLog,
    lateness_seconds: float = DEFAULT_LATENESS_SECONDS,
    retention_seconds: float = DEFAULT_RETENTION_SECONDS,
    batch: int = DEFAULT_BATCH,
    now: Callable[[], float] = time.time,
    progress: Callable[[IngestSummary], None] | None = None,
) -> IngestSummary:
    """Ingest everything the log holds for group ``ingest`` into the data set at ``root``."""
    started = time.perf_counter()
    root = io.check_dataset_dir(pathlib.Path(root))
    users = _ids(root, contracts.USERS, contracts.USER_ID)
    leads = _ids(root, contracts.LEADS, contracts.LEAD_ID)
    log.ping()
    for stream in (IMPRESSIONS_STREAM, FEEDBACK_STREAM):
        log.ensure_group(stream, GROUP)
    summary = IngestSummary()
    index = _ImpressionIndex(root)
    spans = _Spans(root)

    # Impressions first: feedback of this run can then find the answers it reacted to.
    for pending in (True, False):
        while entries := log.read_group(IMPRESSIONS_STREAM, GROUP, CONSUMER, batch, pending):
            decoded = []
            for entry in entries:
                try:
                    decoded.append(Impression.decode(entry.raw))
                except (ValueError, TypeError, KeyError):
                    summary.quarantined[UNREADABLE] += 1
            summary.impressions += index.write(decoded)
            log.ack(IMPRESSIONS_STREAM, GROUP, [e.entry_id for e in entries])
            if progress:
                progress(summary)

    closed_before = now() - lateness_seconds
    for pending in (True, False):
        while entries := log.read_group(FEEDBACK_STREAM, GROUP, CONSUMER, batch, pending):
            bad: list[tuple[dt.date, dict[str, object]]] = []
            engaged: dict[dt.date, list[bytes]] = defaultdict(list)
            for entry in entries:
                summary.feedback_read += 1
                try:
                    fb = Feedback.decode(entry.raw)
                except (ValueError, TypeError, KeyError):
                    bad.append((_utc_day(entry.ms / 1000), {"entry": entry.entry_id}))
                    summary.quarantined[UNREADABLE] += 1
                    continue
                day = _utc_day(fb.ts)
                reason = None
                answer = None
                if fb.user_id not in users:
                    reason = UNKNOWN_USER
                elif fb.lead_id not in leads:
                    reason = UNKNOWN_LEAD
                elif (
                    dt.datetime.combine(
                        day + dt.timedelta(days=1), dt.time(), dt.timezone.utc
                    ).timestamp()
                    < closed_before
                ):
                    reason = LATE
                else:
                    answer = index.find(fb.request_id, fb.issued_at)
                    if answer is None:
                        summary.without_impression += 1
                    elif fb.lead_id not in answer.lead_ids:
                        reason = NOT_SHOWN
                if reason:
                    bad.append((day, {"reason": reason, **dataclasses.asdict(fb)}))
                    summary.quarantined[reason] += 1
                    continue
                row = {
                    contracts.EVENT_ID: fb.feedback_id,
                    contracts.USER_ID: fb.user_id,
                    contracts.LEAD_ID: fb.lead_id,
                    contracts.EVENT_TYPE: fb.event_type,
                    contracts.TIMESTAMP: _timestamp(fb.ts),
                    contracts.REQUEST_ID: fb.request_id,
                }
                if spans.add(day, row):
                    summary.written += 1
                    if answer is not None:
                        engaged[day].append(_serving_row(fb, answer))
                else:
                    summary.duplicates += 1
            _quarantine(root, bad)
            _append_lines(root / SERVING_LOGS_DIR, engaged)
            engaged.clear()
            days = spans.flush()
            summary.days.update(days)
            summary.market_carried += _carry_market_forward(root, days)
            log.ack(FEEDBACK_STREAM, GROUP, [e.entry_id for e in entries])
            if progress:
                progress(summary)

    if summary.days:
        _record_in_manifest(root, summary, now())
    cutoff = entry_id_at(now() - retention_seconds)
    summary.trimmed = sum(log.trim_before(s, cutoff) for s in (IMPRESSIONS_STREAM, FEEDBACK_STREAM))
    summary.seconds = time.perf_counter() - started
    return summary


def _record_in_manifest(root: pathlib.Path, summary: IngestSummary, when: float) -> None:
    manifest = io.read_manifest(root)
    record = manifest.setdefault(MANIFEST_KEY, {})
    record["last_run"] = _timestamp(when)
    record["events"] = int(record.get("events", 0)) + summary.written
    days = [layout.span_name(d) for d in layout.list_spans(root)]
    if days:
        manifest["spans"] = {"first": days[0], "last": days[-1], "count": len(days)}
    carried = set(record.get("market_carried_forward", [])) | set(summary.market_carried)
    if carried:
        record["market_carried_forward"] = sorted(carried)
    io.write_manifest(root, manifest)


def check_data_root(root: pathlib.Path) -> pathlib.Path:
    """The data set to ingest into, or a DataError that says how to make one."""
    try:
        return io.check_dataset_dir(root)
    except DataError as e:
        raise DataError(f"cannot ingest: {e}") from e
