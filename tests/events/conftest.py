"""Fixtures of the event-log tests: the smoke data set, generated once per session."""

from __future__ import annotations

import pathlib

import pytest

from aiqleads.data import synth


@pytest.fixture(scope="session")
def smoke_dataset(tmp_path_factory) -> pathlib.Path:
    """The smoke synthetic data set, generated once per session (read-only for tests)."""
    out = tmp_path_factory.mktemp("events-data") / "smoke"
    synth.generate(synth.preset("smoke"), out)
    return out
