"""A pipeline run's folder and its log: library output to a file, the terminal kept quiet.

TensorFlow, Beam, TFMA, TFX and absl write warnings between the progress lines: Python
warnings, logging records, Keras' epoch lines, and TensorFlow's C++ logs, which go straight
to file descriptor 2 and which no Python setting reaches once TensorFlow has loaded. So
`capture` works on the file descriptors, not on Python objects:

- quiet (the default): descriptors 1 and 2 point at the run's log file for the duration of
  the run, so everything the libraries print, from Python or C++, in this process or in a
  subprocess Beam starts, lands there; the progress lines go to the terminal through a copy
  of the original descriptor 1, which `Capture.say` writes to;
- verbose: the terminal sees everything as before, and descriptor 2 is also copied into the
  log file (a pipe, read by a thread that writes both).

Each run gets a folder, `<runs_dir>/pipeline_runs/<pipeline>/<start time>/`, holding
`run.log`, `run.json` (the MLMD run id once the run has one) and the run's `report.html`
(`pipeline.report`). Nothing heavy is imported here: `capture` must start before
TensorFlow loads, so that its first lines are caught too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
import pathlib
import sys
import threading
from collections.abc import Callable, Iterator

RUNS_FOLDER = "pipeline_runs"  # under the config's runs_dir
LOG_FILE = "run.log"
RUN_FILE = "run.json"  # {"run_id": ..., "pipeline": ..., "metadata": ...}
REPORT_FILE = "report.html"
RUN_ID_KEY = "run_id"
PIPELINE_KEY = "pipeline"
METADATA_KEY = "metadata"
STAMP_FORMAT = "%Y-%m-%dT%H-%M-%S"
_CHUNK = 65536


def runs_root(runs_dir: pathlib.Path, pipeline_name: str) -> pathlib.Path:
    """The folder that holds one folder per run of ``pipeline_name``."""
    return runs_dir / RUNS_FOLDER / pipeline_name


def new_run_folder(runs_dir: pathlib.Path, pipeline_name: str) -> pathlib.Path:
    """A new, empty folder named after the current local time (a suffix when taken)."""
    root = runs_root(runs_dir, pipeline_name)
    root.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime(STAMP_FORMAT)
    for n in range(1000):
        folder = root / (stamp if n == 0 else f"{stamp}.{n}")
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        return folder
    raise FileExistsError(f"no free run folder name under {root} for {stamp}")


def record_run(folder: pathlib.Path, run_id: str | None, pipeline: str, metadata: str) -> None:
    """Write ``run.json``: which MLMD run the folder belongs to."""
    record = {RUN_ID_KEY: run_id, PIPELINE_KEY: pipeline, METADATA_KEY: metadata}
    (folder / RUN_FILE).write_text(json.dumps(record, indent=1) + "\n")


def folder_of_run(runs_dir: pathlib.Path, pipeline_name: str, run_id: str) -> pathlib.Path | None:
    """The run folder whose ``run.json`` names ``run_id``, or None."""
    root = runs_root(runs_dir, pipeline_name)
    if not root.is_dir():
        return None
    for record in sorted(root.glob(f"*/{RUN_FILE}"), reverse=True):
        try:
            if json.loads(record.read_text()).get(RUN_ID_KEY) == run_id:
                return record.parent
        except (OSError, json.JSONDecodeError):
            continue
    return None


@dataclasses.dataclass
class Capture:
    """What `capture` yields: the log's path and a writer of terminal lines."""

    log: pathlib.Path
    say: Callable[[str], None]


def _flush_std() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


class _Tee:
    """Copies what is written to a pipe into other descriptors (the log and the terminal).

    It owns copies of them and closes them when the pipe ends, so that a subprocess still
    holding the pipe past `join`'s timeout never writes to a reused descriptor number.
    """

    def __init__(self, read_fd: int, *out_fds: int) -> None:
        self._read_fd, self._out_fds = read_fd, tuple(os.dup(fd) for fd in out_fds)
        self._thread = threading.Thread(target=self._run, name="run-log-tee", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while chunk := os.read(self._read_fd, _CHUNK):
                for fd in self._out_fds:
                    with contextlib.suppress(OSError):
                        os.write(fd, chunk)
        except OSError:
            pass
        finally:
            for fd in (self._read_fd, *self._out_fds):
                os.close(fd)

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


@contextlib.contextmanager
def capture(log_path: pathlib.Path, verbose: bool = False) -> Iterator[Capture]:
    """Send the libraries' output to ``log_path`` (and, ``verbose``, to the terminal too).

    Inside the block, write terminal lines with the yielded ``say``: in quiet mode
    ``print`` and ``click.echo`` go to the log file. Descriptors are restored on exit.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    _flush_std()
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    saved_out, saved_err = os.dup(1), os.dup(2)
    terminal = os.fdopen(os.dup(saved_out), "w", buffering=1, encoding="utf-8")
    tee: _Tee | None = None
    pipe_write: int | None = None

    def say(line: str) -> None:
        terminal.write(f"{line}\n")
        terminal.flush()

    try:
        if verbose:
            pipe_read, pipe_write = os.pipe()
            tee = _Tee(pipe_read, log_fd, saved_err)
            os.dup2(pipe_write, 2)
        else:
            os.dup2(log_fd, 1)
            os.dup2(log_fd, 2)
        yield Capture(log_path, say)
    finally:
        _flush_std()
        os.dup2(saved_out, 1)
        os.dup2(saved_err, 2)
        if pipe_write is not None:
            os.close(pipe_write)  # the tee reads to the end of the pipe, then stops
        if tee is not None:
            tee.join(timeout=5)
        for fd in (saved_out, saved_err, log_fd):
            os.close(fd)
        terminal.close()
