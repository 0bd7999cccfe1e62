"""The gateway's in-process mirror of online rows: a repeat read costs no round trip (counted
by the online store's own Redis), and every write by another client, a lead's status change
included, reaches the next read once Redis has published it (real redis-server, real
client tracking)."""

from __future__ import annotations

import asyncio
import math
import time

import pytest

from aiqleads.features import definitions as d
from aiqleads.features.online import EntityWrite, OnlineStore
from serving.gateway.metrics import GatewayMetrics
from serving.gateway.online_features import ModelFeatures, OnlineFeatureReader
from serving.gateway.row_mirror import RowMirror
from transforms import features as f

MODEL = ModelFeatures(
    version=1,
    views={d.USER_BEHAVIOUR_V1.name: 1, d.USER_GEO_V1.name: 1},
    catalogue=frozenset({"l1", "l2", "l3"}),
)


def _commands(store: OnlineStore) -> int:
    """Commands the store's Redis has processed (INFO itself counts as one)."""
    return int(store.client.info("stats")["total_commands_processed"])


def _write_user(store: OnlineStore, user: str, views: int, event_ts: float | None = None) -> None:
    ts = time.time() if event_ts is None else event_ts
    store.write(
        EntityWrite(
            d.USER,
            user,
            {
                d.USER_BEHAVIOUR_V1.name: {d.USER_VIEWS: views, d.USER_LAST_EVENT_TS: ts},
                d.USER_GEO_V1.name: {d.USER_LATITUDE: 30.0, d.USER_LONGITUDE: -97.0},
            },
            ts,
        )
    )


class Reader:
    """An `OnlineFeatureReader` with its mirror, on an event loop of the test's own."""

    def __init__(self, url: str, entries: int = 1000) -> None:
        self.loop = asyncio.new_event_loop()
        self.metrics = GatewayMetrics()
        self.reader = self.loop.run_until_complete(self._make(url, entries))
        self.views = self.reader.usable(MODEL)

    async def _make(self, url: str, entries: int) -> OnlineFeatureReader:
        reader = OnlineFeatureReader(url, self.metrics, 0.5, mirror_entries=entries)
        reader.start()
        return reader

    def read(self, user: str):
        return self.loop.run_until_complete(self.reader.read(user, MODEL, self.views))

    def wait_live(self, live: bool = True, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self.reader.mirror.live != live:
            assert time.monotonic() < deadline, f"the mirror never went {'on' if live else 'off'}"
            self.loop.run_until_complete(asyncio.sleep(0.02))

    def close(self) -> None:
        self.loop.run_until_complete(self.reader.close())
        self.loop.close()


def _views(inputs) -> float:
    return dict(zip(f.ONLINE_USER_FEATURES, inputs.user, strict=True))[f.USER_VIEWS]


def _eventually(read, check, timeout: float = 5.0) -> None:
    """Reads until ``check`` holds (an invalidation arrives asynchronously)."""
    deadline = time.monotonic() + timeout
    while not check(read()):
        assert time.monotonic() < deadline, "the change never reached the reader"
        time.sleep(0.01)


@pytest.fixture
def store(redis_server):
    store = OnlineStore(redis_server.url)
    yield store
    store.close()


@pytest.fixture
def reader(redis_server):
    reader = Reader(redis_server.url)
    yield reader
    reader.close()


def test_a_repeat_read_costs_no_round_trip_and_a_write_reaches_the_next_reads(store, reader):
    _write_user(store, "u1", views=3)
    reader.wait_live()
    assert _views(reader.read("u1")) == 3.0  # read from the store, now mirrored
    before = _commands(store)
    for _ in range(20):
        assert _views(reader.read("u1")) == 3.0
    assert _commands(store) - before == 1  # the INFO call alone: 20 reads, no round trip
    # Another client writes the user's rows (the streaming updater would): the next reads
    # see it once Redis has published the change, and are mirrored again after one read.
    _write_user(store, "u1", views=4)
    _eventually(lambda: reader.read("u1"), lambda inputs: _views(inputs) == 4.0)
    before = _commands(store)
    assert _views(reader.read("u1")) == 4.0
    assert _commands(store) - before == 1


def test_an_unknown_user_is_mirrored_as_absent_until_its_first_row_is_written(store, reader):
    reader.wait_live()
    assert all(math.isnan(v) for v in reader.read("new").user)
    before = _commands(store)
    assert all(math.isnan(v) for v in reader.read("new").user)
    assert _commands(store) - before == 1
    _write_user(store, "new", views=1)
    _eventually(lambda: reader.read("new"), lambda inputs: _views(inputs) == 1.0)


def test_a_status_change_excludes_the_lead_without_reading_the_counter_per_request(store, reader):
    reader.wait_live()
    assert reader.read("u1").excluded == ()
    before = _commands(store)
    reader.read("u1")
    assert _commands(store) - before == 1  # neither rows nor the availability counter
    store.put(d.LEAD, "l2", d.LEAD_ATTRIBUTES_V1.name, {d.LEAD_STATUS: "sold"})
    _eventually(lambda: reader.read("u1"), lambda inputs: inputs.excluded == ("l2",))
    store.put(d.LEAD, "l2", d.LEAD_ATTRIBUTES_V1.name, {d.LEAD_STATUS: "active"})
    _eventually(lambda: reader.read("u1"), lambda inputs: inputs.excluded == ())


def test_without_tracking_every_read_goes_to_the_store_and_the_mirror_comes_back(
    store, reader, redis_server
):
    """The invalidation subscription killed (as a Redis restart or a network cut would): the
    mirror is off at once and nothing read before is served; it comes back on its own."""
    _write_user(store, "u1", views=3)
    reader.wait_live()
    reader.read("u1")
    store.client.client_kill_filter(_type="pubsub")
    reader.wait_live(False)
    _write_user(store, "u1", views=5)  # while nothing tracks it
    assert _views(reader.read("u1")) == 5.0
    reader.wait_live(True)
    assert _views(reader.read("u1")) == 5.0
    _write_user(store, "u1", views=6)
    _eventually(lambda: reader.read("u1"), lambda inputs: _views(inputs) == 6.0)


def test_the_tracking_connection_dying_alone_turns_the_mirror_off_within_seconds(store, reader):
    """Killing the tracking client (not the subscriber) stops Redis' invalidations without
    a word on the subscription: the pings find it, and no stale row is served after."""
    _write_user(store, "u1", views=3)
    reader.wait_live()
    reader.read("u1")
    tracking = [c for c in store.client.client_list() if "t" in c["flags"]]
    assert len(tracking) == 1
    store.client.client_kill_filter(_id=tracking[0]["id"])
    started = time.monotonic()
    reader.wait_live(False, timeout=5)
    assert time.monotonic() - started < 3
    _write_user(store, "u1", views=7)
    reader.wait_live(True)
    assert _views(reader.read("u1")) == 7.0


def test_with_the_mirror_turned_off_every_read_goes_to_the_store(store, redis_server):
    """``online_mirror_entries`` 0: a round trip per read, every write seen at once."""
    reader = Reader(redis_server.url, entries=0)
    try:
        _write_user(store, "u1", views=3)
        assert _views(reader.read("u1")) == 3.0
        _write_user(store, "u1", views=4)
        assert _views(reader.read("u1")) == 4.0  # no invalidation to wait for
        assert not reader.reader.mirror.live
        reads = reader.metrics.online_reads
        assert reads.labels("store")._value.get() == 2 and reads.labels("memory")._value.get() == 0
    finally:
        reader.close()


def test_a_read_overtaken_by_an_invalidation_is_not_kept():
    mirror = RowMirror(10, watched=("seq",))
    mirror.switch(True)
    ticket = mirror.begin("k")
    mirror.invalidate(["k"])  # the write landed while the read was on its way
    mirror.keep("k", ticket, {b"v": b"old"})
    assert mirror.get("k") is None
    ticket = mirror.begin("k")
    mirror.keep("k", ticket, {b"v": b"new"})
    assert mirror.get("k") == {b"v": b"new"}
    # Switched off and on during a read: that read is not kept either.
    ticket = mirror.begin("j")
    mirror.switch(False)
    mirror.switch(True)
    mirror.keep("j", ticket, {b"v": b"x"})
    assert mirror.get("j") is None
    # A flush drops everything and moves the watched keys' epochs.
    epoch = mirror.epoch("seq")
    mirror.invalidate(None)
    assert mirror.get("k") is None and mirror.epoch("seq") == epoch + 1


def test_the_mirror_is_bounded_least_recently_used_first():
    mirror = RowMirror(2)
    mirror.switch(True)
    for key in ("a", "b"):
        mirror.keep(key, mirror.begin(key), {})
    assert mirror.get("a") == {}  # a is now the most recent
    mirror.keep("c", mirror.begin("c"), {})
    assert len(mirror) == 2 and mirror.get("b") is None and mirror.get("a") == {}
