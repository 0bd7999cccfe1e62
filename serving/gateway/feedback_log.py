"""Bounded JSONL logs of requests and feedback, read by drift and quality monitoring.

Each log is `<dir>/<name>.jsonl`; when a write would pass `max_bytes`, the file rotates to
`<name>.jsonl.1` (older files shift up) and at most `backups` old files are kept, so the disk
used is bounded by `(backups + 1) * max_bytes`. A write failure never fails a request: the
record is dropped and counted.
"""

from __future__ import annotations

import logging
import os
import pathlib

import orjson

from serving.gateway.metrics import GatewayMetrics

log = logging.getLogger(__name__)


class JsonlLog:
    """One append-only JSONL file with size-based rotation and a capped number of backups."""

    def __init__(
        self,
        directory: pathlib.Path,
        name: str,
        metrics: GatewayMetrics,
        max_bytes: int = 16 * 1024 * 1024,
        backups: int = 4,
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{name}.jsonl"
        self._name, self._metrics = name, metrics
        self._max_bytes, self._backups = max_bytes, backups
        self._file = open(self.path, "ab")  # noqa: SIM115 - kept open for the process lifetime
        self._size = self._file.tell()

    def _rotate(self) -> None:
        self._file.close()
        oldest = self.path.with_name(f"{self.path.name}.{self._backups}")
        if oldest.exists():
            oldest.unlink()
        for i in range(self._backups - 1, 0, -1):
            src = self.path.with_name(f"{self.path.name}.{i}")
            if src.exists():
                os.replace(src, self.path.with_name(f"{self.path.name}.{i + 1}"))
        os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        self._file = open(self.path, "ab")  # noqa: SIM115
        self._size = 0

    def write(self, record: dict) -> None:
        line = orjson.dumps(record, option=orjson.OPT_SORT_KEYS) + b"\n"
        try:
            if self._size and self._size + len(line) > self._max_bytes:
                self._rotate()
            self._file.write(line)
            self._file.flush()
            self._size += len(line)
        except OSError as e:
            self._metrics.log_dropped.labels(self._name).inc()
            log.warning("dropped a %s record: %s", self._name, e)

    def close(self) -> None:
        self._file.close()


class NullLog:
    """Stands in for a log when no --log-dir is given."""

    def write(self, record: dict) -> None:
        pass

    def close(self) -> None:
        pass
