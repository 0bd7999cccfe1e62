"""Which version folders count and which versions each policy keeps."""

from __future__ import annotations

from tensorflow_serving.config import file_system_storage_path_source_pb2 as fs_pb2

from serving.model_server.manager import list_versions, wanted_versions

Policy = fs_pb2.FileSystemStoragePathSourceConfig.ServableVersionPolicy


def test_only_complete_numeric_folders_are_versions(tmp_path):
    for name in ("00000123", "7", "abc", "9"):
        (tmp_path / name).mkdir()
    (tmp_path / "00000123" / "saved_model.pb").write_bytes(b"")
    (tmp_path / "7" / "saved_model.pb").write_bytes(b"")
    (tmp_path / "abc" / "saved_model.pb").write_bytes(b"")
    # "9" has no saved_model.pb yet: still being written
    assert list_versions(str(tmp_path)) == [7, 123]
    assert list_versions(str(tmp_path / "missing")) == []


def test_policies():
    on_disk = [1, 2, 5, 9]
    assert wanted_versions(Policy(), on_disk) == {9}
    latest = Policy()
    latest.latest.num_versions = 2
    assert wanted_versions(latest, on_disk) == {5, 9}
    every = Policy()
    every.all.SetInParent()
    assert wanted_versions(every, on_disk) == {1, 2, 5, 9}
    specific = Policy()
    specific.specific.versions.extend([2, 3])
    assert wanted_versions(specific, on_disk) == {2}
    assert wanted_versions(Policy(), []) == set()
