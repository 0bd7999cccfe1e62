"""A real event store (redis-server with append-only persistence) per test, stopped by PID."""

from __future__ import annotations

import pathlib
import signal
import subprocess

import pytest

from aiqleads.data import synth
from aiqleads.events.log import EventLog
from serving.process import find_binary, free_port, redis_ping, wait_until


class EventStore:
    """A redis-server configured as the event store: AOF on, no eviction, no RDB."""

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
        argv = [
            find_binary("redis-server", "redis-server"),
            *("--port", str(self.port), "--bind", "127.0.0.1"),
            *("--dir", str(self.directory), "--save", ""),
            *("--appendonly", "yes", "--appendfsync", "everysec"),
            *("--maxmemory", f"{self.max_memory_mb}mb", "--maxmemory-policy", "noeviction"),
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
def event_store(tmp_path):
    store = EventStore(tmp_path / "events")
    store.start()
    yield store
    store.stop()


@pytest.fixture
def event_log(event_store):
    log = EventLog(event_store.url, timeout_seconds=2.0)
    yield log
    log.close()


@pytest.fixture(scope="session")
def smoke_dataset(tmp_path_factory) -> pathlib.Path:
    """The smoke synthetic data set, generated once per session (read-only for tests)."""
    out = tmp_path_factory.mktemp("events-data") / "smoke"
    synth.generate(synth.preset("smoke"), out)
    return out
