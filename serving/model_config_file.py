"""TF Serving's model config file with version labels, written so that nobody reads half of it.

The model servers read ``--model_config_file`` and re-read it every
``--model_config_file_poll_wait_seconds`` (ours and the real ``tensorflow_model_server``
alike). Its one model lists the versions to keep loaded (a ``specific`` version policy) and
the ``version_labels`` the gateways resolve (``stable``, ``canary``). Writes go to a
temporary file in the same folder, are flushed to disk and renamed over the old file, so a
poll sees the old config or the new one, never a mix. Changes hold an exclusive lock
(`exclusive_lock`), so that two writers (two ``aiqleads models promote`` at once, or one and
the rollout controller) cannot interleave their read-modify-write.

The file is parsed with the model server's own reader (`serving.model_server.config`), so a
file this module accepts is one the model servers accept.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import os
import pathlib
import time
from collections.abc import Iterator, Mapping

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from aiqleads.errors import ConfigError
from serving.model_server.config import PLATFORM, load_model_server_config

MODEL_CONFIG_FILE = "models.config"
LOCK_FILE = ".lock"
LOCK_TIMEOUT_SECONDS = 0.0  # a second writer fails at once rather than queueing behind


class ConcurrentChangeError(ConfigError):
    """Another process holds the lock of the deployment folder."""


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """One model of the config: where its versions are, which to load, and its labels."""

    name: str
    base_path: str
    versions: tuple[int, ...]
    labels: tuple[tuple[str, int], ...] = ()

    def __post_init__(self) -> None:
        if not self.versions:
            raise ConfigError(f"model {self.name}: the config must load at least one version")
        missing = sorted({v for _, v in self.labels} - set(self.versions))
        if missing:
            raise ConfigError(
                f"model {self.name}: labels point at versions {missing} that the config "
                "does not load"
            )

    @property
    def label_map(self) -> dict[str, int]:
        return dict(self.labels)

    @classmethod
    def create(
        cls, name: str, base_path: str, versions: set[int], labels: Mapping[str, int]
    ) -> ModelEntry:
        """Sorted versions and labels, so that equal configs render to equal text."""
        return cls(name, base_path, tuple(sorted(versions)), tuple(sorted(labels.items())))


def render(entry: ModelEntry) -> str:
    """The text-format ``ModelServerConfig`` of one model with a specific version policy."""
    config = model_server_config_pb2.ModelServerConfig()
    model = config.model_config_list.config.add()
    model.name = entry.name
    model.base_path = entry.base_path
    model.model_platform = PLATFORM
    model.model_version_policy.specific.versions.extend(entry.versions)
    for label, version in entry.labels:
        model.version_labels[label] = version
    text: str = text_format.MessageToString(config)
    return text


def read(path: pathlib.Path, model_name: str) -> ModelEntry:
    """The entry of ``model_name`` in the config file at ``path`` (a ConfigError naming the
    file when it is missing, corrupt, or does not hold that model with a specific policy)."""
    try:
        config = load_model_server_config(path)
    except ConfigError as e:
        raise ConfigError(
            f"model config {path} is not usable: {e}. Fix the file, or restore the last good "
            "labels from the deployment history (aiqleads models history)"
        ) from e
    for model in config.model_config_list.config:
        if model.name != model_name:
            continue
        policy = model.model_version_policy
        if policy.WhichOneof("policy_choice") != "specific":
            raise ConfigError(
                f"model config {path}: model {model_name} must list its versions in a "
                "specific version policy (the registry keeps the labelled ones loaded)"
            )
        return ModelEntry.create(
            model.name,
            model.base_path,
            set(policy.specific.versions),
            dict(model.version_labels),
        )
    raise ConfigError(f"model config {path} has no model {model_name!r}")


def bootstrap_base_path(path: pathlib.Path, model_name: str) -> str | None:
    """The base path of ``model_name`` when the config at ``path`` is valid but keeps its
    versions by another policy than ``specific`` (no version chosen yet); else None."""
    try:
        config = load_model_server_config(path)
    except ConfigError:
        return None
    for model in config.model_config_list.config:
        policy = model.model_version_policy.WhichOneof("policy_choice")
        if model.name == model_name and policy != "specific":
            base: str = model.base_path
            return base
    return None


def write(path: pathlib.Path, entry: ModelEntry) -> None:
    """Replace the config at ``path`` atomically with ``entry``'s text."""
    write_atomic(path, render(entry))


def write_atomic(path: pathlib.Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, fsync it, rename it over ``path``
    and fsync the folder: a reader sees the old content or the new, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def exclusive_lock(
    directory: pathlib.Path, timeout_seconds: float = LOCK_TIMEOUT_SECONDS
) -> Iterator[None]:
    """Hold the folder's lock file (``flock``) for one read-modify-write of its files.

    A second holder waits up to ``timeout_seconds`` and then gets a ConcurrentChangeError
    that names the process holding the lock. The kernel releases the lock when its process
    dies, so a crashed writer never leaves the folder locked.
    """
    directory.mkdir(parents=True, exist_ok=True)
    lock_path = directory / LOCK_FILE
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout_seconds
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as e:
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
                    raise ConcurrentChangeError(
                        f"another change of the deployment in {directory} is in progress "
                        f"(pid {holder}); nothing was changed: retry when it has finished"
                    ) from e
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
