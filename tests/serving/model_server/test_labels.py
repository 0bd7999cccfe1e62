"""Labels against loads, in process on TF Serving's half_plus_two: a new config whose labels
all point at loaded versions switches them before the config's new versions load (a rollback
is not held up by the load of the version a further rollback would need); a label that points
at a version still to load moves only once that version is available."""

from __future__ import annotations

import pathlib
import shutil

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from serving.model_server.manager import LOADING, ModelManager

MODEL = "half_plus_two"
STABLE = "stable"


def _config(base: pathlib.Path, versions: list[int], stable: int):
    config = model_server_config_pb2.ModelServerConfig()
    specific = " ".join(f"versions: {v}" for v in versions)
    text_format.Parse(
        f'model_config_list {{ config {{ name: "{MODEL}" base_path: "{base}" '
        f'model_platform: "tensorflow" model_version_policy {{ specific {{ {specific} }} }} '
        f'version_labels {{ key: "{STABLE}" value: {stable} }} }} }}',
        config,
    )
    return config


def _manager(tmp_path: pathlib.Path, tf_serving_testdata: pathlib.Path):
    """Versions 1 and 2 loaded with stable on 2, version 3 on disk only; and a list that
    records where stable points whenever a version starts loading."""
    source = tf_serving_testdata / "saved_model_half_plus_two_2_versions" / "00000123"
    base = tmp_path / MODEL
    for version in (1, 2, 3):
        shutil.copytree(source, base / str(version))
    manager = ModelManager()
    manager.apply_config(_config(base, [1, 2], stable=2))
    assert manager.resolve_version(MODEL, None, STABLE) == 2
    seen: list[tuple[int, int | None]] = []

    def on_change(name: str, version: int, state: int) -> None:
        if state == LOADING:
            seen.append((version, manager.resolve_version(name, None, STABLE)))

    manager.on_change = on_change
    return manager, base, seen


def test_a_label_on_a_loaded_version_switches_before_the_other_loads(tmp_path, tf_serving_testdata):
    manager, base, seen = _manager(tmp_path, tf_serving_testdata)
    try:
        manager.apply_config(_config(base, [1, 2, 3], stable=1))  # a rollback keeping 3 warm
        assert seen == [(3, 1)]  # stable was on 1 when 3 began to load
        assert manager.resolve_version(MODEL, None, STABLE) == 1
        assert sorted(v for v, _ in manager.status(MODEL)) == [1, 2, 3]
    finally:
        manager.shutdown()


def test_a_label_on_a_version_to_load_moves_once_it_is_available(tmp_path, tf_serving_testdata):
    manager, base, seen = _manager(tmp_path, tf_serving_testdata)
    try:
        manager.apply_config(_config(base, [1, 2, 3], stable=3))
        assert seen == [(3, 2)]  # stable stayed on 2 while 3 loaded
        assert manager.resolve_version(MODEL, None, STABLE) == 3
    finally:
        manager.shutdown()
