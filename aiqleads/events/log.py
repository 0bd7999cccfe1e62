"""The event log's client: append (with feedback deduplication), read, acknowledge, trim.

The store is a dedicated Redis instance with append-only persistence and no eviction
(`serving.command_lines` starts it; docs/event_log.md says why). Writers use the
`FEEDBACK_APPEND` script; readers use consumer groups (ingestion) or plain ranges (the
monitor, the quality report). Every Redis failure surfaces as `EventLogError`, which the API
turns into a retryable 503 and the commands into a one-line error.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import SupportsInt, cast

import redis
from redis.exceptions import RedisError, ResponseError
from redis.typing import EncodableT, FieldT, KeyT, StreamIdT

from aiqleads.errors import ServiceError
from aiqleads.events.records import (
    FEEDBACK_ID_PREFIX,
    FEEDBACK_STREAM,
    IMPRESSIONS_STREAM,
    RECORD_FIELD,
    Feedback,
    Impression,
)

# Appends a feedback once per feedback id. The `#!lua` line makes Redis refuse the whole
# script up front when it is out of memory, rather than after a partial write. The stream
# entry is written before the marker: if the marker's write failed, a retry would add a
# second entry, which ingestion drops by feedback id; the reverse order could mark a
# feedback as seen that was never stored.
FEEDBACK_APPEND = """#!lua
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local id = redis.call('XADD', KEYS[2], '*', ARGV[2], ARGV[3])
redis.call('SET', KEYS[1], id, 'EX', ARGV[1])
return id
"""
DEFAULT_DEDUP_SECONDS = 86_400
"""How long a feedback id is remembered by the store (ingestion deduplicates for ever)."""


def feedback_append_call(
    feedback: Feedback, dedup_seconds: int
) -> tuple[list[KeyT], list[str | int | bytes]]:
    """The keys and arguments of `FEEDBACK_APPEND` for one feedback (both clients call it)."""
    return (
        [FEEDBACK_ID_PREFIX + feedback.feedback_id, FEEDBACK_STREAM],
        [dedup_seconds, RECORD_FIELD, feedback.encode()],
    )


def impression_fields(impression: Impression) -> dict[FieldT, EncodableT]:
    """The stream entry's fields of one impression in `IMPRESSIONS_STREAM`."""
    return {RECORD_FIELD: impression.encode()}


# The replies of the synchronous client to the stream reads. redis-py annotates every reply
# as `Awaitable[Any] | Any` (one signature for its synchronous and asyncio clients); the
# casts below say what the synchronous client returns.
_Entries = list[tuple[bytes, dict[bytes, bytes]]]
"""Stream entries: (id, fields) pairs, oldest first."""
_Streams = list[tuple[bytes, _Entries]]
"""(stream name, entries) pairs, as XREAD and XREADGROUP give them."""


class EventLogError(ServiceError):
    """The event store could not take or give events; retry later."""


@dataclass(frozen=True)
class Entry:
    """One stream entry: its id (``<ms>-<seq>``) and the raw record."""

    entry_id: str
    raw: bytes

    @property
    def ms(self) -> int:
        return int(self.entry_id.split("-", 1)[0])


def entry_id_at(seconds: float) -> str:
    """The smallest stream id at or after a time (for ranges by time)."""
    return f"{int(seconds * 1000)}-0"


class EventLog:
    """A synchronous client (ingestion, the monitor, reports, tests)."""

    def __init__(self, url: str, timeout_seconds: float = 5.0) -> None:
        self.url = url
        self._redis = redis.Redis.from_url(
            url, socket_timeout=timeout_seconds, socket_connect_timeout=timeout_seconds
        )
        self._append = self._redis.register_script(FEEDBACK_APPEND)

    def close(self) -> None:
        self._redis.close()

    def ping(self) -> None:
        try:
            self._redis.ping()
        except RedisError as e:
            raise EventLogError(f"event store {redact(self.url)} is unreachable: {e}") from e

    # -- writes --------------------------------------------------------------------------
    def append_feedback(
        self, feedback: Feedback, dedup_seconds: int = DEFAULT_DEDUP_SECONDS
    ) -> str | None:
        """The new entry's id, or None when this feedback id was recorded already."""
        try:
            keys, args = feedback_append_call(feedback, dedup_seconds)
            result = self._append(keys=keys, args=args)
        except RedisError as e:
            raise EventLogError(f"event store refused a feedback: {e}") from e
        return None if result is None else _text(result)

    def append_impressions(self, impressions: list[Impression]) -> None:
        try:
            pipe = self._redis.pipeline(transaction=False)
            for imp in impressions:
                pipe.xadd(IMPRESSIONS_STREAM, impression_fields(imp))
            pipe.execute()
        except RedisError as e:
            raise EventLogError(f"event store refused impressions: {e}") from e

    # -- reads ---------------------------------------------------------------------------
    def range(
        self, stream: str, start: str = "-", end: str = "+", batch: int = 5000
    ) -> Iterator[Entry]:
        """Every entry of ``stream`` from ``start`` to ``end`` (ids), oldest first."""
        cursor = start
        while True:
            try:
                rows = cast(_Entries, self._redis.xrange(stream, min=cursor, max=end, count=batch))
            except RedisError as e:
                raise EventLogError(f"cannot read {stream}: {e}") from e
            for entry_id, fields in rows:
                yield Entry(_text(entry_id), fields[RECORD_FIELD.encode()])
            if len(rows) < batch:
                return
            cursor = "(" + _text(rows[-1][0])

    def read_new(
        self, streams: dict[str, str], block_ms: int, count: int = 5000
    ) -> dict[str, list[Entry]]:
        """Entries after the given ids (``XREAD``); ``{stream: [Entry]}``."""
        after: dict[KeyT, StreamIdT] = {name: entry_id for name, entry_id in streams.items()}
        try:
            rows = cast(_Streams | None, self._redis.xread(after, count=count, block=block_ms))
        except RedisError as e:
            raise EventLogError(f"cannot read the event log: {e}") from e
        return {
            _text(stream): [Entry(_text(i), f[RECORD_FIELD.encode()]) for i, f in entries]
            for stream, entries in rows or []
        }

    def ensure_group(self, stream: str, group: str) -> None:
        """Create a consumer group at the start of ``stream`` (and the stream) if missing."""
        try:
            self._redis.xgroup_create(stream, group, id="0", mkstream=True)
        except ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise EventLogError(f"cannot create group {group} on {stream}: {e}") from e
        except RedisError as e:
            raise EventLogError(f"cannot create group {group} on {stream}: {e}") from e

    def read_group(
        self, stream: str, group: str, consumer: str, count: int, pending: bool
    ) -> list[Entry]:
        """Entries for ``consumer``: its unacknowledged ones (``pending``) or new ones."""
        try:
            rows = cast(
                _Streams | None,
                self._redis.xreadgroup(
                    group, consumer, {stream: "0" if pending else ">"}, count=count
                ),
            )
        except RedisError as e:
            raise EventLogError(f"cannot read {stream} as {group}: {e}") from e
        out = []
        for _, entries in rows or []:
            for entry_id, fields in entries:
                if fields:  # a pending entry trimmed since it was delivered has no fields
                    out.append(Entry(_text(entry_id), fields[RECORD_FIELD.encode()]))
        return out

    def ack(self, stream: str, group: str, entry_ids: list[str]) -> None:
        if not entry_ids:
            return
        try:
            self._redis.xack(stream, group, *entry_ids)
        except RedisError as e:
            raise EventLogError(f"cannot acknowledge entries of {stream}: {e}") from e

    def trim_before(self, stream: str, entry_id: str) -> int:
        """Drop the entries older than ``entry_id``; how many went."""
        try:
            return int(cast(SupportsInt, self._redis.xtrim(stream, minid=entry_id)))
        except RedisError as e:
            raise EventLogError(f"cannot trim {stream}: {e}") from e

    def length(self, stream: str) -> int:
        try:
            return int(cast(SupportsInt, self._redis.xlen(stream)))
        except RedisError as e:
            raise EventLogError(f"cannot read {stream}: {e}") from e


def redact(url: str) -> str:
    """``url`` without its password (for messages and logs)."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user + ':' if user else ':'}***@{host}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
