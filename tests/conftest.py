"""Fixtures shared by every test folder: a real event store (redis-server, append-only), and
the closed loop's session fixtures (`loop_fixtures.py`: a trained smoke model, a served stack).
"""

from __future__ import annotations

import importlib.util
import pathlib
import sys

import pytest

from aiqleads.events.log import EventLog
from serving import command_lines
from serving.settings import EventStoreSettings

TESTS = pathlib.Path(__file__).parent


def _load(name: str, path: pathlib.Path):
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


# Redis processes for the stores (tests/features/conftest.py imports it by this name too).
redis_process = _load("redis_process", TESTS / "fixtures" / "redis_process.py")


def start_event_store(directory: pathlib.Path, max_memory_mb: int = 64):
    """A redis-server started as the stack starts its event store (`command_lines`)."""

    def arguments(port: int, host: str, directory: pathlib.Path) -> list[str]:
        settings = EventStoreSettings(port=port, max_memory_mb=max_memory_mb)
        return command_lines.event_store_args(settings, bind=host, directory=directory)

    store = redis_process.RedisProcess(directory, arguments, "event store")
    store.start()
    return store


@pytest.fixture
def make_event_store(tmp_path):
    """Factory of event stores (``max_memory_mb`` to choose), each stopped after the test."""
    stores = []

    def make(name: str = "events", max_memory_mb: int = 64):
        store = start_event_store(tmp_path / name, max_memory_mb)
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


loop_fixtures = _load("loop_fixtures", TESTS / "loop_fixtures.py")
loop_world = loop_fixtures.loop_world
served_stack = loop_fixtures.served_stack
stack_token = loop_fixtures.stack_token
