"""Child processes of the serving stack: find binaries, start, probe, stop by PID.

Each child runs in its own process group (so stopping it also stops anything it spawned)
and gets SIGTERM from the kernel if the thread that started it dies without cleaning up
(Linux ``PR_SET_PDEATHSIG``), so no orphan outlives the stack. `ModelServerProcess` is one
`aiqleads-model-server` child on free loopback ports, as tests and benchmarks start it.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import pathlib
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence

from aiqleads.errors import ServiceError

_PR_SET_PDEATHSIG = 1
LOOPBACK = "127.0.0.1"
MODEL_SERVER_BINARY = "aiqleads-model-server"


# Listening ports come from below the kernel's ephemeral range: a port that bind(0) hands
# out is one that any outgoing connection (a health probe, a Redis client) may take as its
# local port before the child that was given it binds, and the child then fails to start.
_LISTEN_PORTS = (10_000, 32_768)  # the range's start when the kernel does not say
_EPHEMERAL_RANGE = pathlib.Path("/proc/sys/net/ipv4/ip_local_port_range")
_given: set[int] = set()  # ports this process handed out: never twice


def _listen_range() -> tuple[int, int]:
    try:
        low = int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return _LISTEN_PORTS
    return (_LISTEN_PORTS[0], low) if low - _LISTEN_PORTS[0] >= 1000 else (1024, low)


def free_port(host: str = LOOPBACK) -> int:
    """A port free on ``host`` right now, below the ephemeral range (so no outgoing
    connection takes it before its listener binds) and not handed out before by this
    process; bind(0) when none is found."""
    low, high = _listen_range()
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(low, high)
        if port in _given:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
        _given.add(port)
        return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        found: int = s.getsockname()[1]
    _given.add(found)
    return found


def find_binary(name: str, what: str) -> str:
    """Path of ``name``: next to this Python first (the venv), then on PATH."""
    venv_bin = str(pathlib.Path(sys.executable).parent)
    found = shutil.which(name, path=venv_bin) or shutil.which(name)
    if found is None:
        raise ServiceError(f"{name} not found: install {what} (run `make setup`)")
    return found


@functools.cache
def _libc_prctl() -> Callable[..., int] | None:
    """libc's ``prctl``, resolved in the parent, so that the child between fork and exec only
    calls it (no ``dlopen`` there, whose lock another thread of the parent may have held)."""
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except OSError:
        return None


def _die_with_parent(prctl: Callable[..., int] | None) -> None:  # runs in the child, fork to exec
    if prctl is not None:
        with contextlib.suppress(Exception):
            prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def http_status(url: str, timeout: float = 1.0) -> tuple[int, bytes]:
    """(status, body) of a GET, or (0, b"") when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (OSError, ValueError):
        return 0, b""


def redis_ping(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when a Redis server answers PING on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def wait_until(
    predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.1
) -> float:
    """Poll ``predicate`` until true; seconds waited. ServiceError naming ``what`` on timeout."""
    start = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise ServiceError(f"{what} not ready after {timeout:.0f} s")
        time.sleep(interval)


class Child:
    """One supervised process: argv, log file, and a readiness probe."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: pathlib.Path,
        ready: Callable[[], bool],
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.ready = ready
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(self.env or {})},
                start_new_session=True,
                preexec_fn=functools.partial(_die_with_parent, _libc_prctl()),
            )

    def exit_code(self) -> int | None:
        """None while running (or never started), else the exit status."""
        return None if self.proc is None else self.proc.poll()

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the child's process group (the child and what it spawned)."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``; reaps the process."""
        if self.proc is None:
            return
        self.signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.proc.wait(timeout=5)
        # Anything left in the group (a grandchild that ignored SIGTERM) goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def log_tail(self, lines: int = 5) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def model_server_binary() -> str:
    """Path of ``aiqleads-model-server`` (the venv's first)."""
    return find_binary(MODEL_SERVER_BINARY, "the project (pip install -e .)")


class ModelServerProcess:
    """An ``aiqleads-model-server`` child on free loopback ports: its ports, URLs and log.

    `start_model_server` starts one, `running_model_server` for the length of a block.
    """

    def __init__(self, child: Child, grpc_port: int, rest_port: int) -> None:
        self.child, self.grpc_port, self.rest_port = child, grpc_port, rest_port

    @property
    def grpc_target(self) -> str:
        return f"{LOOPBACK}:{self.grpc_port}"

    @property
    def rest_url(self) -> str:
        return f"http://{LOOPBACK}:{self.rest_port}"

    @property
    def log_path(self) -> pathlib.Path:
        return self.child.log_path

    def log_tail(self, lines: int = 40) -> str:
        return self.child.log_tail(lines)

    def wait_ready(self, model: str, timeout: float = 240.0) -> None:
        """Until ``GET /v1/models/{model}`` answers 200 (models load before the listeners
        open); ServiceError with the log's tail if the server exits or is not ready in time."""
        url = f"{self.rest_url}/v1/models/{model}"

        def ready() -> bool:
            code = self.child.exit_code()
            if code is not None:
                raise ServiceError(f"model server exited with {code}: {self.log_tail()}")
            return http_status(url, timeout=2.0)[0] == 200

        try:
            wait_until(ready, timeout, f"model server (model {model})", interval=0.3)
        except ServiceError as e:
            if self.child.exit_code() is not None:
                raise
            raise ServiceError(f"{e}: {self.log_tail()}") from e

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, SIGKILL after ``timeout``; the exit code (0 after a clean drain)."""
        self.child.stop(timeout)
        return self.child.exit_code()


def start_model_server(args: Sequence[str], log_path: pathlib.Path) -> ModelServerProcess:
    """Start ``aiqleads-model-server`` with ``args`` plus free ``--port`` and
    ``--rest_api_port`` on the loopback address; ready once `wait_ready` returns."""
    grpc_port, rest_port = free_port(), free_port()
    argv = [
        model_server_binary(),
        f"--port={grpc_port}",
        f"--rest_api_port={rest_port}",
        f"--host={LOOPBACK}",
        *args,
    ]
    env = {"TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}

    def listening() -> bool:  # the server opens its listeners once its models are loaded
        return http_status(f"http://{LOOPBACK}:{rest_port}/")[0] != 0

    child = Child(MODEL_SERVER_BINARY, argv, log_path, ready=listening, env=env)
    child.start()
    return ModelServerProcess(child, grpc_port, rest_port)


@contextlib.contextmanager
def running_model_server(
    args: Sequence[str], log_path: pathlib.Path, ready_model: str
) -> Iterator[ModelServerProcess]:
    """A started, ready model server for the duration of the block; stopped by PID after."""
    server = start_model_server(args, log_path)
    try:
        server.wait_ready(ready_model)
        yield server
    finally:
        server.stop()
