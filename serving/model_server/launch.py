"""Start `aiqleads-model-server` as a child process on free loopback ports (tests, benchmarks).

The child gets its own process group and is stopped by PID (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence

from aiqleads.errors import ServiceError

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def model_server_binary() -> str:
    return str(pathlib.Path(sys.executable).parent / "aiqleads-model-server")


class ServerProcess:
    """A running model server child: its ports, URLs, log file and PID."""

    def __init__(self, proc: subprocess.Popen, grpc_port: int, rest_port: int, log: pathlib.Path):
        self.proc, self.grpc_port, self.rest_port, self.log = proc, grpc_port, rest_port, log

    @property
    def grpc_target(self) -> str:
        return f"{HOST}:{self.grpc_port}"

    @property
    def rest_url(self) -> str:
        return f"http://{HOST}:{self.rest_port}"

    def wait_ready(self, model: str, timeout: float = 240.0) -> None:
        """Until `GET /v1/models/{model}` answers 200 (models load before listeners open)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServiceError(
                    f"model server exited with {self.proc.returncode}: {self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(f"{self.rest_url}/v1/models/{model}", timeout=2) as r:
                    if r.status == 200:
                        return
            except (OSError, urllib.error.HTTPError):
                pass
            time.sleep(0.3)
        raise ServiceError(f"model server not ready after {timeout:.0f}s: {self.log_tail()}")

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log.read_text()[-chars:]
        except OSError:
            return ""

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM the child by PID, SIGKILL after `timeout`; returns its exit code."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        return self.proc.returncode


def start(args: Sequence[str], log: pathlib.Path, rest: bool = True) -> ServerProcess:
    """Start the server with `args` plus free `--port`/`--rest_api_port` on 127.0.0.1."""
    grpc_port, rest_port = free_port(), free_port() if rest else 0
    argv = [
        model_server_binary(),
        f"--port={grpc_port}",
        f"--rest_api_port={rest_port}",
        f"--host={HOST}",
        *args,
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    out = open(log, "wb")  # noqa: SIM115 - handed to the child, closed with it
    proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
    out.close()
    return ServerProcess(proc, grpc_port, rest_port, log)


@contextlib.contextmanager
def running(args: Sequence[str], log: pathlib.Path, ready_model: str) -> Iterator[ServerProcess]:
    """A started, ready server for the duration of the block; stopped by PID after."""
    server = start(args, log)
    try:
        server.wait_ready(ready_model)
        yield server
    finally:
        server.stop()
