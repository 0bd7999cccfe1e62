from __future__ import annotations

import pathlib

import pytest

from tests.kustomize.manifests import build_overlays


@pytest.fixture(scope="session")
def built(tmp_path_factory) -> dict[str, pathlib.Path]:
    """Overlay name -> the rendered multi-document YAML file (built once)."""
    return build_overlays(tmp_path_factory.mktemp("kustomize"))
