"""Fixtures of the feature store tests: a real online store (redis-server started with the
stack's own arguments, `command_lines.feature_store_args`) and a small synthetic data set."""

from __future__ import annotations

import pathlib
import subprocess

import pytest

from serving import command_lines
from serving.process import find_binary, free_port, redis_ping, wait_until
from serving.settings import FeatureStoreSettings


class StoreProcess:
    """An online store (redis-server, append-only, no eviction) on a free loopback port."""

    def __init__(self, directory: pathlib.Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        argv = [
            find_binary("redis-server", "redis-server"),
            *command_lines.feature_store_args(
                FeatureStoreSettings(port=self.port, max_memory_mb=64),
                bind="127.0.0.1",
                directory=self.directory,
            ),
        ]
        log = open(self.directory / "redis.log", "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        wait_until(lambda: redis_ping("127.0.0.1", self.port), 10, "online store")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def store_process(tmp_path):
    process = StoreProcess(tmp_path / "online-store")
    process.start()
    yield process
    process.stop()


@pytest.fixture
def online_store(store_process):
    from aiqleads.features.online import OnlineStore

    store = OnlineStore(store_process.url, timeout_seconds=2.0)
    yield store
    store.close()


@pytest.fixture(scope="module")
def small_world(tmp_path_factory):
    """A small synthetic data set (4 days): (data root, its span days)."""
    from aiqleads import layout
    from aiqleads.data import synth

    root = tmp_path_factory.mktemp("features-world") / "data"
    synth.generate(synth.preset("smoke", users=60, leads=40, days=4, events=900, seed=5), root)
    return root, layout.list_spans(root)
