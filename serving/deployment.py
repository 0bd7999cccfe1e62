"""The deployment of one model: its version labels, the canary's share of users, and the
append-only history of every change.

Three files in one folder (``<run_dir>/deployment/`` locally; a ConfigMap in Kubernetes):

- ``models.config``: TF Serving's model config (`serving.model_config_file`), which the model
  servers poll: the versions to keep loaded and the labels ``stable`` and ``canary``;
- ``canary.json``: ``{"canary_fraction": F}``, the share of users (by hash) the gateways send
  to the ``canary`` label; they re-read it with every version refresh;
- ``history.jsonl``: one JSON object per change (time, actor, action, reason, the labels and
  the fraction after it, and before it). Lines are only ever appended, each flushed to disk
  before the change returns, so the history survives restarts and crashes.

Every change holds the folder's lock, reads the current state, checks it, then writes the
config, the fraction and a history line: two changes at once cannot interleave, and a change
that is refused writes nothing.

Which versions stay loaded: the labelled ones, the previous stable (so that a rollback needs
no load and takes effect within one poll of the model servers and the gateways), and the
versions the labels pointed at before this change (so that a gateway that has not seen the
change yet still finds the version it routes to).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
import time
from typing import Any

from aiqleads.errors import ConfigError
from serving import model_config_file as mcf

DEPLOYMENT_DIR = "deployment"  # under a local stack's run dir
CANARY_FILE = "canary.json"
HISTORY_FILE = "history.jsonl"
FRACTION_KEY = "canary_fraction"
STABLE = "stable"
CANARY = "canary"
LABELS = (STABLE, CANARY)

# History actions.
INIT = "init"
PROMOTE = "promote"
ROLLBACK = "rollback"
ROLLBACK_CANARY = "rollback-canary"
SET_FRACTION = "canary-fraction"


@dataclasses.dataclass(frozen=True)
class DeploymentState:
    """Labels, loaded versions and canary share as the files say now."""

    model_name: str
    base_path: str
    stable: int | None
    canary: int | None
    canary_fraction: float
    loaded: tuple[int, ...]

    @property
    def labels(self) -> dict[str, int]:
        out = {STABLE: self.stable, CANARY: self.canary}
        return {k: v for k, v in out.items() if v is not None}


@dataclasses.dataclass(frozen=True)
class Change:
    """One line of the history: what a change did, who did it and why."""

    time: float
    actor: str
    action: str
    reason: str
    stable: int | None
    canary: int | None
    canary_fraction: float
    previous_stable: int | None = None
    previous_canary: int | None = None
    previous_fraction: float | None = None
    version: int | None = None  # the version the action was about

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, line: str, where: str) -> Change:
        try:
            data: dict[str, Any] = json.loads(line)
            names = {f.name for f in dataclasses.fields(cls)}
            return cls(**{k: v for k, v in data.items() if k in names})
        except (ValueError, TypeError) as e:
            raise ConfigError(f"deployment history {where} is corrupt: {e}") from e


def read_canary_fraction(path: pathlib.Path) -> float | None:
    """The fraction in a ``canary.json``, or None when the file is absent or unreadable
    (the reader then keeps what it had)."""
    try:
        value = json.loads(path.read_text())[FRACTION_KEY]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    fraction = float(value)
    return fraction if 0.0 <= fraction <= 1.0 else None


def check_fraction(fraction: float) -> float:
    if math.isnan(fraction) or not 0.0 <= fraction <= 1.0:
        raise ConfigError(f"canary fraction must be in [0, 1], got {fraction}")
    return float(fraction)


def version_dir_complete(base_path: pathlib.Path, version: int) -> bool:
    """``<base>/<version>/saved_model.pb`` exists (the Pusher writes whole folders)."""
    if not base_path.is_dir():
        return False
    return any(
        p.name.isdigit() and int(p.name) == version and (p / "saved_model.pb").is_file()
        for p in base_path.iterdir()
    )


class Deployment:
    """Reads and changes the deployment in ``directory`` of model ``model_name``.

    Versions are checked against the base path when it is a local folder (locally, the
    Pusher's destination); a Kubernetes overlay's deployment names the pods' volume, which the
    machine running ``aiqleads models`` does not see, so there the registry (MLMD) vouches
    for the version instead.
    """

    def __init__(self, directory: pathlib.Path, model_name: str) -> None:
        self.directory = pathlib.Path(directory)
        self.model_name = model_name

    def _present(self, base_path: pathlib.Path | str, version: int) -> bool:
        base = pathlib.Path(base_path)
        return version_dir_complete(base, version) if base.is_dir() else True

    @property
    def config_path(self) -> pathlib.Path:
        return self.directory / mcf.MODEL_CONFIG_FILE

    @property
    def canary_path(self) -> pathlib.Path:
        return self.directory / CANARY_FILE

    @property
    def history_path(self) -> pathlib.Path:
        return self.directory / HISTORY_FILE

    def exists(self) -> bool:
        return self.config_path.is_file()

    def bootstrap_base_path(self) -> str | None:
        """The base path of a config that no version has been promoted in yet (a Kubernetes
        overlay's first ``models.config``: the newest versions, no labels); else None."""
        if not self.exists():
            return None
        return mcf.bootstrap_base_path(self.config_path, self.model_name)

    # -- reading -----------------------------------------------------------------------
    def state(self) -> DeploymentState:
        if not self.exists():
            raise ConfigError(
                f"no deployment in {self.directory}: start the stack (aiqleads serve) or pass "
                "the --run-dir of a running one"
            )
        entry = mcf.read(self.config_path, self.model_name)
        labels = entry.label_map
        fraction = read_canary_fraction(self.canary_path)
        return DeploymentState(
            model_name=entry.name,
            base_path=entry.base_path,
            stable=labels.get(STABLE),
            canary=labels.get(CANARY),
            canary_fraction=0.0 if fraction is None else fraction,
            loaded=entry.versions,
        )

    def history(self) -> list[Change]:
        if not self.history_path.is_file():
            return []
        lines = self.history_path.read_text(encoding="utf-8").splitlines()
        return [
            Change.from_json(line, f"{self.history_path}:{i}")
            for i, line in enumerate(lines, 1)
            if line.strip()
        ]

    def stable_chain(self) -> list[int]:
        """The stable versions in promotion order, rolled-back ones removed: the last is the
        current stable, the one before it where a rollback goes."""
        chain: list[int] = []
        for change in self.history():
            if change.action == INIT:
                chain = [] if change.stable is None else [change.stable]
            elif change.action == PROMOTE and change.stable != change.previous_stable:
                if change.stable is not None:
                    chain.append(change.stable)
            elif change.action == ROLLBACK and chain:
                chain.pop()
        return chain

    # -- changes -----------------------------------------------------------------------
    def initialize(
        self,
        base_path: pathlib.Path,
        version: int,
        canary_fraction: float,
        actor: str,
        reason: str,
    ) -> Change | None:
        """Make ``version`` the stable of a new deployment of ``base_path``. Nothing happens
        (None) when the folder already holds a valid deployment of that base path; one of
        another base path (or none) is replaced and the history says so."""
        with mcf.exclusive_lock(self.directory):
            if self.exists():
                current = self.state()
                if pathlib.Path(current.base_path) == pathlib.Path(base_path).resolve():
                    return None
            if not version_dir_complete(base_path, version):
                raise ConfigError(f"no complete version {version} under {base_path}")
            fraction = check_fraction(canary_fraction)
            base = pathlib.Path(base_path).resolve()
            return self._init(base, version, fraction, actor, reason)

    def promote(
        self, version: int, label: str, actor: str, reason: str, fraction: float | None = None
    ) -> Change:
        """Point ``label`` (stable or canary) at ``version``. Promoting the canary to stable
        drops the canary label. ``fraction`` sets the canary's share of users in the same
        change."""
        if fraction is not None:
            fraction = check_fraction(fraction)
        if label not in LABELS:
            raise ConfigError(f"label must be one of {', '.join(LABELS)}, got {label!r}")
        bootstrap = self.bootstrap_base_path()
        if bootstrap is not None and label == STABLE:
            return self._first_stable(pathlib.Path(bootstrap), version, actor, reason)
        with mcf.exclusive_lock(self.directory):
            state = self.state()
            base = pathlib.Path(state.base_path)
            if not self._present(base, version):
                raise ConfigError(
                    f"version {version} is not under {base} (no {version}/saved_model.pb): "
                    "aiqleads models list shows the pushed versions"
                )
            stable, canary = state.stable, state.canary
            if label == STABLE:
                if version == stable:
                    raise ConfigError(f"version {version} is already {STABLE}; nothing changed")
                stable, canary = version, (None if canary == version else canary)
            else:
                if version == stable:
                    raise ConfigError(
                        f"version {version} is the {STABLE} version; a canary must be another "
                        "version (nothing changed)"
                    )
                if version == canary:
                    raise ConfigError(f"version {version} is already {CANARY}; nothing changed")
                canary = version
            return self._change(state, PROMOTE, stable, canary, fraction, actor, reason, version)

    def _first_stable(self, base: pathlib.Path, version: int, actor: str, reason: str) -> Change:
        """Replace a config without a chosen version by one with ``version`` stable."""
        with mcf.exclusive_lock(self.directory):
            if not self._present(base, version):
                raise ConfigError(f"version {version} is not under {base}; nothing changed")
            fraction = read_canary_fraction(self.canary_path) or 0.0
            return self._init(base, version, fraction, actor, reason)

    def _init(
        self, base: pathlib.Path, version: int, fraction: float, actor: str, reason: str
    ) -> Change:
        """Write a deployment of ``base`` with ``version`` stable, no canary and ``fraction``,
        whatever the folder held (the caller holds the lock and has checked the version)."""
        entry = mcf.ModelEntry.create(self.model_name, str(base), {version}, {STABLE: version})
        change = Change(
            time=time.time(),
            actor=actor,
            action=INIT,
            reason=reason,
            stable=version,
            canary=None,
            canary_fraction=fraction,
            version=version,
        )
        self._commit(entry, fraction, change)
        return change

    def rollback(self, actor: str, reason: str) -> Change:
        """Send ``stable`` back to the stable version before it; the canary label goes too."""
        with mcf.exclusive_lock(self.directory):
            state = self.state()
            chain = self.stable_chain()
            if state.stable is None or len(chain) < 2 or chain[-1] != state.stable:
                raise ConfigError(
                    f"no earlier {STABLE} version to roll back to (stable history: "
                    f"{chain or 'empty'}); nothing changed"
                )
            target = chain[-2]
            if not self._present(state.base_path, target):
                raise ConfigError(
                    f"the earlier {STABLE} version {target} is no longer under "
                    f"{state.base_path}; promote a version explicitly (nothing changed)"
                )
            return self._change(state, ROLLBACK, target, None, None, actor, reason, state.stable)

    def rollback_canary(self, actor: str, reason: str) -> Change:
        """Drop the ``canary`` label: its users go back to ``stable``."""
        with mcf.exclusive_lock(self.directory):
            state = self.state()
            if state.canary is None:
                raise ConfigError(f"there is no {CANARY} to roll back; nothing changed")
            return self._change(
                state, ROLLBACK_CANARY, state.stable, None, None, actor, reason, state.canary
            )

    def set_canary_fraction(self, fraction: float, actor: str, reason: str) -> Change:
        """Send ``fraction`` of the users (by hash of their id) to the ``canary`` label."""
        fraction = check_fraction(fraction)
        with mcf.exclusive_lock(self.directory):
            state = self.state()
            return self._change(
                state, SET_FRACTION, state.stable, state.canary, fraction, actor, reason, None
            )

    def _change(
        self,
        state: DeploymentState,
        action: str,
        stable: int | None,
        canary: int | None,
        fraction: float | None,
        actor: str,
        reason: str,
        version: int | None,
    ) -> Change:
        labels = {STABLE: stable, CANARY: canary}
        new_labels = {k: v for k, v in labels.items() if v is not None}
        chain = self.stable_chain()
        if action == ROLLBACK:
            chain = chain[:-1]
        elif stable != state.stable and stable is not None:
            chain.append(stable)
        keep = set(new_labels.values()) | set(state.labels.values())
        if len(chain) >= 2:
            keep.add(chain[-2])  # where a rollback would go: loaded, so it needs no load
        base = pathlib.Path(state.base_path)
        keep = {v for v in keep if self._present(base, v)}
        entry = mcf.ModelEntry.create(state.model_name, state.base_path, keep, new_labels)
        new_fraction = state.canary_fraction if fraction is None else fraction
        change = Change(
            time=time.time(),
            actor=actor,
            action=action,
            reason=reason,
            stable=stable,
            canary=canary,
            canary_fraction=new_fraction,
            previous_stable=state.stable,
            previous_canary=state.canary,
            previous_fraction=state.canary_fraction,
            version=version,
        )
        self._commit(entry, new_fraction, change)
        return change

    def _commit(self, entry: mcf.ModelEntry, fraction: float, change: Change) -> None:
        """Config, fraction, then the history line (each durable before the next)."""
        mcf.write(self.config_path, entry)
        if read_canary_fraction(self.canary_path) != fraction:
            mcf.write_atomic(self.canary_path, json.dumps({FRACTION_KEY: fraction}) + "\n")
        self._append(change)

    def _append(self, change: Change) -> None:
        fd = os.open(self.history_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (change.to_json() + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
