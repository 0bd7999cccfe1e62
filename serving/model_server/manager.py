"""Models and their versions: file-system polling, version policies, labels, atomic swaps.

Each poll lists the numeric version folders under every model's base path, loads the
versions the policy wants that are not loaded yet (replaying their warm-up requests first),
swaps the routing table atomically, and retires versions the policy no longer wants once
their in-flight requests have finished. Like TF Serving's availability-preserving policy, a
model never drops to zero versions because a new one failed to load: while no wanted version
is available, the newest unwanted one keeps serving.
"""

from __future__ import annotations

import dataclasses
import logging
import pathlib
import threading
import time
from collections.abc import Callable

from tensorflow_serving.config import file_system_storage_path_source_pb2, model_server_config_pb2

from serving.errors import Code, ServingError, invalid, not_found
from serving.model_server.servable import (
    Servable,
    SessionThreads,
    is_complete_version_dir,
    lookup_missing,
)
from serving.model_server.warmup import WarmupError, WarmupOptions, WarmupResult, run_warmup

log = logging.getLogger("aiqleads.model_server")

# States of a version as ModelService.GetModelStatus reports them (ModelVersionStatus.State).
START, LOADING, AVAILABLE, UNLOADING, END = 10, 20, 30, 40, 50
_DRAIN_SECONDS = 60.0


@dataclasses.dataclass
class VersionState:
    state: int
    error_code: Code = Code.OK
    error_message: str = ""


@dataclasses.dataclass
class _Model:
    config: model_server_config_pb2.ModelConfig | None  # None: no longer listed
    servables: dict[int, Servable] = dataclasses.field(default_factory=dict)
    states: dict[int, VersionState] = dataclasses.field(default_factory=dict)
    labels: dict[str, int] = dataclasses.field(default_factory=dict)


def list_versions(base_path: str) -> list[int]:
    """Complete numeric version folders under `base_path`, ascending."""
    root = pathlib.Path(base_path)
    try:
        entries = list(root.iterdir())
    except OSError:
        return []
    return sorted(
        int(p.name)
        for p in entries
        if p.name.isdigit() and p.is_dir() and is_complete_version_dir(p)
    )


def wanted_versions(
    policy: file_system_storage_path_source_pb2.FileSystemStoragePathSourceConfig.ServableVersionPolicy,
    on_disk: list[int],
) -> set[int]:
    """The versions a `FileSystemStoragePathSourceConfig.ServableVersionPolicy` keeps."""
    kind = policy.WhichOneof("policy_choice")
    if kind == "all":
        return set(on_disk)
    if kind == "specific":
        return set(policy.specific.versions) & set(on_disk)
    n = policy.latest.num_versions if kind == "latest" and policy.latest.num_versions else 1
    return set(on_disk[-n:])


def retired_versions(wanted: set[int], loaded: set[int]) -> set[int]:
    """The loaded versions to unload: the unwanted ones, except that while no wanted version
    is loaded (still loading, or failed) the newest unwanted one stays, as in TF Serving."""
    unwanted = loaded - wanted
    if wanted and not wanted & loaded and unwanted:
        unwanted.discard(max(unwanted))
    return unwanted


class ModelManager:
    """Thread-safe registry of loaded servables; `handle()` gives a counted reference."""

    def __init__(
        self,
        allow_labels_for_unavailable: bool = False,
        warmup: WarmupOptions | None = None,
        threads: SessionThreads | None = None,
    ) -> None:
        self._lock = threading.RLock()
        self._models: dict[str, _Model] = {}
        self._allow_unavailable_labels = allow_labels_for_unavailable
        self._warmup = warmup or WarmupOptions()
        self._threads = threads or SessionThreads()
        self._poll_lock = threading.Lock()
        self.on_change: Callable[[str, int, int], None] | None = None  # (model, version, state)
        self.on_warmup: Callable[[str, int, WarmupResult], None] | None = None

    # ---- configuration -------------------------------------------------------------------
    def apply_config(self, server_config: model_server_config_pb2.ModelServerConfig) -> None:
        """Replace the served model list (ModelServerConfig), load what it needs, set labels.

        Models no longer listed are unloaded. Labels must point at available versions
        (FAILED_PRECONDITION otherwise, like TF Serving); the previous labels stay then.
        A model whose new labels all point at versions loaded already, and still wanted,
        switches them before the loads of its other new versions: a rollback to a loaded
        version does not wait for the load of the version a further rollback would need.
        """
        configs = {m.name: m for m in server_config.model_config_list.config}
        with self._lock:
            for name in list(self._models):
                if name not in configs:
                    self._models[name].config = None
            for name, cfg in configs.items():
                model = self._models.setdefault(name, _Model(config=cfg))
                model.config = cfg
        for name, cfg in configs.items():
            labelled = set(cfg.version_labels.values())
            wanted = wanted_versions(cfg.model_version_policy, list_versions(cfg.base_path))
            with self._lock:
                model = self._models[name]
                if labelled <= set(model.servables) & wanted:
                    model.labels = dict(cfg.version_labels)
        self.poll()
        with self._lock:
            for name, cfg in configs.items():
                model = self._models[name]
                for version in cfg.version_labels.values():
                    if version not in model.servables and not self._allow_unavailable_labels:
                        raise ServingError(
                            Code.FAILED_PRECONDITION,
                            f"Request to assign label to version {version} of model {name}, "
                            "which is not currently available for inference",
                        )
            for name, cfg in configs.items():
                self._models[name].labels = dict(cfg.version_labels)

    # ---- polling -------------------------------------------------------------------------
    def poll(self) -> None:
        """One pass over every model's base path: load wanted versions, retire the rest."""
        with self._poll_lock:
            with self._lock:
                models = list(self._models.items())
            for name, model in models:
                config = model.config  # one reading: apply_config may unlist it meanwhile
                if config is None:
                    self._retire(name, model, set(model.servables))
                    with self._lock:
                        if not model.servables and model.config is None:
                            self._models.pop(name, None)
                    continue
                on_disk = list_versions(config.base_path)
                wanted = wanted_versions(config.model_version_policy, on_disk)
                if not on_disk:
                    log.warning(
                        "No versions of servable %s found under base path %s",
                        name,
                        config.base_path,
                    )
                for version in sorted(wanted - set(model.servables)):
                    if model.states.get(version, VersionState(START)).error_code != Code.OK:
                        continue  # failed before; TF Serving does not retry a failed version
                    self._load(name, model, config.base_path, version)
                self._retire(name, model, retired_versions(wanted, set(model.servables)))

    def _set_state(self, name: str, model: _Model, version: int, state: VersionState) -> None:
        with self._lock:
            model.states[version] = state
        if self.on_change is not None:
            self.on_change(name, version, state.state)

    def _load(self, name: str, model: _Model, base_path: str, version: int) -> None:
        path = pathlib.Path(base_path) / str(version)
        path = next(
            (
                p
                for p in pathlib.Path(base_path).iterdir()
                if p.name.isdigit() and int(p.name) == version
            ),
            path,
        )
        self._set_state(name, model, version, VersionState(LOADING))
        started = time.monotonic()
        try:
            servable = Servable(name, version, path, self._threads)
        except Exception as e:  # any load failure is reported through GetModelStatus
            log.error("Loading servable %s version %d failed: %s", name, version, e)
            self._set_state(name, model, version, VersionState(END, Code.UNKNOWN, str(e)))
            return
        if self._warmup.enabled:
            try:
                result = run_warmup(
                    servable, self._warmup.iterations, self._warmup.method_name_check
                )
            except WarmupError as e:  # the version is not served; its status says why
                servable.retire(timeout=0)
                self._notify_warmup(name, version, e.result)
                log.error("Loading servable %s version %d failed: %s", name, version, e)
                self._set_state(name, model, version, VersionState(END, e.code, e.message))
                return
            if result is not None:
                self._notify_warmup(name, version, result)
        with self._lock:
            model.servables = {**model.servables, version: servable}  # atomic swap
        self._set_state(name, model, version, VersionState(AVAILABLE))
        log.info(
            "Successfully loaded servable version {name: %s version: %d} in %.2fs",
            name,
            version,
            time.monotonic() - started,
        )

    def _notify_warmup(self, name: str, version: int, result: WarmupResult) -> None:
        if self.on_warmup is not None:
            self.on_warmup(name, version, result)

    def _retire(self, name: str, model: _Model, versions: set[int]) -> None:
        for version in sorted(versions):
            with self._lock:
                servable = model.servables.get(version)
                if servable is None:
                    continue
                model.servables = {v: s for v, s in model.servables.items() if v != version}
            self._set_state(name, model, version, VersionState(UNLOADING))
            servable.retire(timeout=_DRAIN_SECONDS)
            self._set_state(name, model, version, VersionState(END))
            log.info("Unloaded servable version {name: %s version: %d}", name, version)

    # ---- lookups -------------------------------------------------------------------------
    def _model(self, name: str) -> _Model:
        model = self._models.get(name)
        if model is None or model.config is None:
            raise lookup_missing(name, None)
        return model

    def resolve_version(self, name: str, version: int | None, label: str | None) -> int | None:
        """The version a model spec means: explicit, by label, or None for the latest."""
        if label:
            with self._lock:
                model = self._models.get(name)
                if model is not None and label in model.labels:
                    return model.labels[label]
            raise invalid(f"Unrecognized servable version label: {label}")
        return version

    def handle(
        self, name: str, version: int | None = None, label: str | None = None
    ) -> ServableHandle:
        """A `ServableHandle` (context manager) on the requested version; NOT_FOUND if absent."""
        version = self.resolve_version(name, version, label)
        for _ in range(3):  # a version retired between lookup and acquire: look again
            with self._lock:
                model = self._models.get(name)
                servables = model.servables if model is not None and model.config else {}
                if version is None:
                    chosen = servables[max(servables)] if servables else None
                else:
                    chosen = servables.get(version)
            if chosen is None:
                raise lookup_missing(name, version)
            if chosen.acquire():
                return ServableHandle(chosen)
        raise lookup_missing(name, version)

    def status(self, name: str, version: int | None = None) -> list[tuple[int, VersionState]]:
        """(version, state) pairs of a model, newest first; NOT_FOUND like TF Serving."""
        with self._lock:
            model = self._models.get(name)
            states = dict(model.states) if model is not None else {}
        if not states:
            raise not_found(f"Could not find any versions of model {name}")
        if version is not None:
            if version not in states:
                raise not_found(f"Could not find version {version} of model {name}")
            return [(version, states[version])]
        return sorted(states.items(), reverse=True)

    def knows(self, name: str) -> bool:
        """Whether ``name`` is a model of the current config."""
        with self._lock:
            model = self._models.get(name)
            return model is not None and model.config is not None

    def models(self) -> dict[str, list[int]]:
        """Model name -> available versions (for logs and metrics)."""
        with self._lock:
            return {n: sorted(m.servables) for n, m in self._models.items() if m.config}

    def shutdown(self) -> None:
        """Retire every servable (waits for in-flight requests)."""
        with self._lock:
            models = list(self._models.items())
        for name, model in models:
            self._retire(name, model, set(model.servables))


class ServableHandle:
    """A counted reference to a servable; release it by leaving the `with` block."""

    def __init__(self, servable: Servable) -> None:
        self.servable = servable

    def __enter__(self) -> Servable:
        return self.servable

    def __exit__(self, *exc: object) -> None:
        self.servable.release()


class Poller:
    """Calls `fn` every `period` seconds on a daemon thread until `stop()`."""

    def __init__(self, period: float, fn: Callable[[], object], name: str) -> None:
        self._period, self._fn = period, fn
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> Poller:
        if self._period > 0:
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self._period):
            try:
                self._fn()
            except Exception:  # a bad poll must not stop future polls
                log.exception("poll failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
