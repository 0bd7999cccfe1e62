"""``<run_dir>/stack.json``: where a running local stack listens, for the other commands.

`aiqleads serve` writes it once every child is ready and removes it when it stops;
`aiqleads events ingest`, `aiqleads quality report` and `aiqleads simulate` read it when
no address is given. It holds addresses only, never a password.
"""

from __future__ import annotations

import json
import os
import pathlib
from dataclasses import asdict, dataclass

from aiqleads.errors import ServiceError

STACK_FILE = "stack.json"


@dataclass(frozen=True)
class StackAddresses:
    front_url: str  # Envoy, REST (gRPC on the same port)
    event_store_url: str
    monitor_url: str
    # None when the stack runs without monitoring (`aiqleads serve --no-monitoring`).
    prometheus_url: str | None = None
    alertmanager_url: str | None = None
    trigger_url: str | None = None
    online_store_url: str | None = None  # None without the feature store


def write(run_dir: pathlib.Path, addresses: StackAddresses) -> pathlib.Path:
    path = pathlib.Path(run_dir) / STACK_FILE
    tmp = path.with_name(f".{STACK_FILE}.tmp")
    tmp.write_text(json.dumps(asdict(addresses), indent=2) + "\n")
    os.replace(tmp, path)
    return path


def remove(run_dir: pathlib.Path) -> None:
    (pathlib.Path(run_dir) / STACK_FILE).unlink(missing_ok=True)


def read(run_dir: pathlib.Path) -> StackAddresses:
    """The addresses of the stack running from ``run_dir``, or a ServiceError saying how."""
    path = pathlib.Path(run_dir) / STACK_FILE
    try:
        data = json.loads(path.read_text())
        return StackAddresses(**data)
    except FileNotFoundError as e:
        raise ServiceError(
            f"no running stack found ({path} is missing): start one with `aiqleads serve`, "
            "or give its address"
        ) from e
    except (OSError, ValueError, TypeError) as e:
        raise ServiceError(f"{path} is unreadable ({e}); restart `aiqleads serve`") from e
