"""Fixtures of the model server tests: TF Serving's own test data, next to the repository."""

from __future__ import annotations

import pathlib

import pytest

TF_SERVING_TESTDATA = pathlib.Path(__file__).resolve().parents[4] / "shared/testdata/tf_serving"


@pytest.fixture(scope="session")
def tf_serving_testdata() -> pathlib.Path:
    """TF Serving's reference SavedModels (half_plus_two, ...) and config files."""
    return TF_SERVING_TESTDATA
