"""Fixtures of the feature store tests: a real online store (redis-server started with the
stack's own arguments, `command_lines.feature_store_args`) and a small synthetic data set."""

from __future__ import annotations

import pathlib

import pytest
from redis_process import RedisProcess  # loaded by tests/conftest.py

from serving import command_lines
from serving.settings import FeatureStoreSettings


def _online_store_args(port: int, host: str, directory: pathlib.Path) -> list[str]:
    """An online store's redis-server arguments (append-only, no eviction)."""
    settings = FeatureStoreSettings(port=port, max_memory_mb=64)
    return command_lines.feature_store_args(settings, bind=host, directory=directory)


@pytest.fixture
def store_process(tmp_path):
    process = RedisProcess(tmp_path / "online-store", _online_store_args, "online store")
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
