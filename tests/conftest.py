"""Fixtures shared by every test folder: a real event store (redis-server, append-only), and
the closed loop's session fixtures (`loop_fixtures.py`: a trained smoke model, a served stack).
"""

from __future__ import annotations

import importlib.util
import pathlib
import signal
import subprocess
import sys

import pytest

from aiqleads.events.log import EventLog
from serving import command_lines
from serving.process import find_binary, free_port, redis_ping, wait_until
from serving.settings import EventStoreSettings


class EventStore:
    """A redis-server started as the stack starts its event store (`command_lines`)."""

    def __init__(self, directory: pathlib.Path, max_memory_mb: int = 64) -> None:
        self.directory = directory
        self.port = free_port()
        self.max_memory_mb = max_memory_mb
        self.proc: subprocess.Popen | None = None
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        settings = EventStoreSettings(port=self.port, max_memory_mb=self.max_memory_mb)
        argv = [
            find_binary("redis-server", "redis-server"),
            *command_lines.event_store_args(settings, bind="127.0.0.1", directory=self.directory),
        ]
        log = open(self.directory / "redis.log", "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        wait_until(lambda: redis_ping("127.0.0.1", self.port), 10, "event store")
        # Loading the AOF happens before PING answers +PONG, so the data is there now.

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs, as in a crash."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def make_event_store(tmp_path):
    """Factory of event stores (``max_memory_mb`` to choose), each stopped after the test."""
    stores = []

    def make(name: str = "events", max_memory_mb: int = 64) -> EventStore:
        store = EventStore(tmp_path / name, max_memory_mb)
        store.start()
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.stop()


@pytest.fixture
def event_store(make_event_store):
    return make_event_store()


@pytest.fixture
def event_log(event_store):
    log = EventLog(event_store.url, timeout_seconds=2.0)
    yield log
    log.close()


def _load(name: str, path: pathlib.Path):
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


loop_fixtures = _load("loop_fixtures", pathlib.Path(__file__).parent / "loop_fixtures.py")
loop_world = loop_fixtures.loop_world
served_stack = loop_fixtures.served_stack
stack_token = loop_fixtures.stack_token
