"""The model registry: every version the pipeline trained and pushed, from the pipeline's own
ML Metadata store, the Pusher's base path and the serving deployment (docs/registry.md).

Nothing is stored twice. For each pushed version MLMD already holds the lineage: the Pusher's
``PushedModel`` (version, destination, time), the Trainer's model and its ``custom_config``
(the code fingerprint), the Evaluator's inputs (the Examples of the window, with its first
and last span, and ExampleGen's ``input_fingerprint`` of the window's files), its
``ModelEvaluation`` (the TFMA metrics) and its ``ModelBlessing``. The deployment folder
(`serving.deployment`) holds the labels and their append-only history, from which "in
service since" follows. A version under the base path that MLMD does not know (copied by
hand) is listed too, as unregistered.

The same code reads a local run's SQLite file or, for Kubeflow Pipelines, the cluster's
MLMD gRPC service (``--mlmd HOST:PORT``): TFX records the same artifacts and properties on
both orchestrators.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pathlib
from collections.abc import Iterable

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

from aiqleads.errors import ConfigError
from components.example_gen import recorded as eg_spec
from pipeline import run_report
from pipeline.code_version import CODE_FINGERPRINT_KEY
from serving.deployment import LABELS, Change, Deployment, DeploymentState, version_dir_complete

SAVED_MODEL = "saved_model.pb"
SERVING_FORMAT = "Format-Serving"  # the Trainer's SavedModel under its Model artifact
PUSHED_VERSION_PROPERTY = "pushed_version"
BLESSED_PROPERTY = "blessed"
MODEL_KEY = "model"  # the input key of the candidate in the Evaluator and the Pusher
EXAMPLES_KEY = "examples"
_INPUT = metadata_store_pb2.Event.INPUT
_OUTPUTS = (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)


@dataclasses.dataclass(frozen=True)
class ModelVersion:
    """What the registry knows of one version."""

    version: int
    registered: bool  # known to MLMD (pushed by the pipeline)
    on_disk: bool
    pushed_at: float | None = None  # seconds since the epoch
    destination: str = ""
    window: tuple[str, str] | None = None  # first and last span of the training window
    data_fingerprint: str = ""  # ExampleGen's fingerprint of the window's files
    code_version: str = ""  # the Trainer's code fingerprint
    blessed: bool | None = None  # the Evaluator's blessing (pushed: also the smoke check's)
    offline_metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    baseline_metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    labels: tuple[str, ...] = ()
    in_service_since: float | None = None  # when it first got a label

    def as_dict(self) -> dict[str, object]:
        out = dataclasses.asdict(self)
        out["window"] = list(self.window) if self.window else None
        return out


def connect(metadata: str | pathlib.Path) -> metadata_store.MetadataStore:
    """A SQLite MLMD file (read-only), or ``HOST:PORT`` of an MLMD gRPC service (KFP)."""
    text = str(metadata)
    host, sep, port = text.rpartition(":")
    if sep and port.isdigit() and not pathlib.Path(text).exists():
        config = metadata_store_pb2.MetadataStoreClientConfig(host=host, port=int(port))
        return metadata_store.MetadataStore(config)
    path = pathlib.Path(text)
    if not path.is_file():
        raise ConfigError(
            f"no ML Metadata store at {path}: run `aiqleads pipeline run` first, or pass "
            "--pipeline-config (local) or --mlmd HOST:PORT (Kubeflow Pipelines)"
        )
    return run_report.connect(path)


class Registry:
    """Versions from MLMD and the base path, labels and history from the deployment."""

    def __init__(
        self,
        store: metadata_store.MetadataStore | None,
        base_path: pathlib.Path,
        deployment: Deployment | None = None,
    ) -> None:
        self.store = store
        self.base_path = pathlib.Path(base_path)
        self.deployment = deployment

    # -- reading -------------------------------------------------------------------------
    def versions(self) -> list[ModelVersion]:
        """Every pushed or present version, newest first."""
        known = {v.version: v for v in self._from_mlmd()}
        on_disk = set(self._on_disk())
        for version in on_disk - set(known):
            known[version] = ModelVersion(version=version, registered=False, on_disk=True)
        state, history = self._deployment()
        out = []
        for version, entry in known.items():
            labels = tuple(
                label for label, v in (state.labels if state else {}).items() if v == version
            )
            out.append(
                dataclasses.replace(
                    entry,
                    on_disk=version in on_disk,
                    labels=labels,
                    in_service_since=_in_service_since(version, history),
                )
            )
        return sorted(out, key=lambda v: v.version, reverse=True)

    def version(self, version: int) -> ModelVersion:
        for entry in self.versions():
            if entry.version == version:
                return entry
        raise ConfigError(
            f"unknown version {version}: neither pushed (MLMD) nor under {self.base_path} "
            "(aiqleads models list shows the versions)"
        )

    def history(self) -> list[Change]:
        return self._deployment()[1]

    def _deployment(self) -> tuple[DeploymentState | None, list[Change]]:
        if self.deployment is None or not self.deployment.exists():
            return None, []
        return self.deployment.state(), self.deployment.history()

    def _on_disk(self) -> list[int]:
        if not self.base_path.is_dir():
            return []
        return [
            int(p.name)
            for p in self.base_path.iterdir()
            if p.name.isdigit() and version_dir_complete(self.base_path, int(p.name))
        ]

    def pushed(self) -> dict[int, metadata_store_pb2.Artifact]:
        """Version -> the Pusher's PushedModel, for every version the pipeline pushed."""
        if self.store is None:
            return {}
        out = {}
        for pushed in artifacts(self.store, "PushedModel"):
            props = pushed.custom_properties
            if props.get(run_report.PUSHED_PROPERTY, _NONE).int_value != 1:
                continue
            version_text = props.get(PUSHED_VERSION_PROPERTY, _NONE).string_value
            if version_text.isdigit():
                out[int(version_text)] = pushed
        return out

    def trained_model_blessing(self, version: int) -> bool | None:
        """For a version copied under the base path by hand: the Evaluator's blessing of the
        trained model with the same ``saved_model.pb`` (None: no such model in MLMD)."""
        if self.store is None:
            return None
        wanted = _digest(self.base_path / _version_dir_name(self.base_path, version) / SAVED_MODEL)
        for model in artifacts(self.store, "Model"):
            if _digest(pathlib.Path(model.uri) / SERVING_FORMAT / SAVED_MODEL) != wanted:
                continue
            evaluator = _consumer(self.store, model.id, MODEL_KEY, "Evaluator")
            if evaluator is None:
                return None
            for artifact in run_report.output_artifacts(self.store, evaluator.id):
                if BLESSED_PROPERTY in artifact.custom_properties:
                    return artifact.custom_properties[BLESSED_PROPERTY].int_value == 1
        return None

    def _from_mlmd(self) -> Iterable[ModelVersion]:
        store = self.store
        if store is None:
            return []
        return [self._lineage(store, pushed, v) for v, pushed in self.pushed().items()]

    def _lineage(
        self, store: metadata_store.MetadataStore, pushed: metadata_store_pb2.Artifact, version: int
    ) -> ModelVersion:
        pusher = _producer(store, pushed.id)
        model_id = _input_artifact(store, pusher.id, MODEL_KEY) if pusher else None
        entry = ModelVersion(
            version=version,
            registered=True,
            on_disk=False,
            pushed_at=pushed.create_time_since_epoch / 1000.0,
            destination=pushed.custom_properties[
                run_report.PUSHED_DESTINATION_PROPERTY
            ].string_value,
            blessed=True,  # the Pusher pushes blessed models only
        )
        if model_id is None:
            return entry
        trainer = _producer(store, model_id)
        code = ""
        if trainer is not None:
            config = trainer.custom_properties.get("custom_config", _NONE).string_value
            try:
                code = str(json.loads(config or "{}").get(CODE_FINGERPRINT_KEY, ""))
            except json.JSONDecodeError:
                code = ""
        evaluator = _consumer(store, model_id, MODEL_KEY, "Evaluator")
        window, fingerprint, blessed = None, "", entry.blessed
        metrics: dict[str, float] = {}
        baseline: dict[str, float] = {}
        if evaluator is not None:
            examples_id = _input_artifact(store, evaluator.id, EXAMPLES_KEY)
            if examples_id is not None:
                (examples,) = store.get_artifacts_by_id([examples_id])
                first = examples.custom_properties.get(eg_spec.WINDOW_FIRST_PROPERTY, _NONE)
                last = examples.custom_properties.get(eg_spec.WINDOW_LAST_PROPERTY, _NONE)
                window = (first.string_value, last.string_value)
                example_gen = _producer(store, examples_id)
                if example_gen is not None:
                    fp = example_gen.custom_properties.get(eg_spec.FINGERPRINT_KEY, _NONE)
                    fingerprint = fp.string_value.split(":")[0]
            for artifact in run_report.output_artifacts(store, evaluator.id):
                kind = store.get_artifact_types_by_id([artifact.type_id])[0].name
                if kind.endswith("ModelBlessing"):
                    blessed = artifact.custom_properties[BLESSED_PROPERTY].int_value == 1
                elif kind.endswith("ModelEvaluation"):
                    metrics, baseline = _evaluation(artifact.uri)
        return dataclasses.replace(
            entry,
            window=window,
            data_fingerprint=fingerprint,
            code_version=code,
            blessed=blessed,
            offline_metrics=metrics,
            baseline_metrics=baseline,
        )

    # -- changing labels -----------------------------------------------------------------
    def check_promotable(self, version: int, force: bool = False) -> None:
        """Raise unless ``version`` may get a label: under the base path, and pushed by the
        pipeline (the Pusher pushes blessed models only). ``force`` lets through a version
        MLMD does not know (a baseline copied by hand), never one whose model the Evaluator
        refused. Reads no lineage, so that it takes a moment."""
        pushed = version in self.pushed()
        # A Kubernetes base path is the pods' volume, not visible here: MLMD vouches for it.
        local = self.base_path.is_dir()
        on_disk = version_dir_complete(self.base_path, version) if local else pushed
        if not on_disk:
            where = "pushed once but no longer" if pushed else "not"
            raise ConfigError(
                f"unknown version {version}: {where} under {self.base_path} "
                "(aiqleads models list shows the versions); nothing changed"
            )
        if pushed:
            return
        if local and self.trained_model_blessing(version) is False:
            raise ConfigError(
                f"version {version} is not blessed: the Evaluator refused its model; nothing "
                "changed"
            )
        if not force:
            raise ConfigError(
                f"version {version} was not pushed by the pipeline, so it has no blessing; "
                "pass --force to label it anyway (recorded in the history); nothing changed"
            )


_NONE = metadata_store_pb2.Value()


def artifacts(
    store: metadata_store.MetadataStore, type_name: str
) -> list[metadata_store_pb2.Artifact]:
    """Artifacts of a type, whatever namespace the orchestrator put it in (``tfx.Model``)."""
    out = []
    for artifact_type in store.get_artifact_types():
        if artifact_type.name == type_name or artifact_type.name.endswith(f".{type_name}"):
            out += store.get_artifacts_by_type(artifact_type.name)
    return out


def _producer(
    store: metadata_store.MetadataStore, artifact_id: int
) -> metadata_store_pb2.Execution | None:
    events = [e for e in store.get_events_by_artifact_ids([artifact_id]) if e.type in _OUTPUTS]
    if not events:
        return None
    return store.get_executions_by_id([events[0].execution_id])[0]


def _key(event: metadata_store_pb2.Event) -> str:
    steps = event.path.steps
    return steps[0].key if steps and steps[0].HasField("key") else ""


def _input_artifact(store: metadata_store.MetadataStore, execution_id: int, key: str) -> int | None:
    for event in store.get_events_by_execution_ids([execution_id]):
        if event.type == _INPUT and _key(event) == key:
            return event.artifact_id
    return None


def _consumer(
    store: metadata_store.MetadataStore, artifact_id: int, key: str, type_suffix: str
) -> metadata_store_pb2.Execution | None:
    """The newest finished execution of a type that read the artifact under ``key``."""
    ids = [
        e.execution_id
        for e in store.get_events_by_artifact_ids([artifact_id])
        if e.type == _INPUT and _key(e) == key
    ]
    done = (metadata_store_pb2.Execution.COMPLETE, metadata_store_pb2.Execution.CACHED)
    found = [
        x
        for x in store.get_executions_by_id(ids)
        if x.type.endswith(type_suffix) and x.last_known_state in done
    ]
    return max(found, key=lambda x: x.id) if found else None


def _digest(path: pathlib.Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ""


def _version_dir_name(base: pathlib.Path, version: int) -> str:
    """The folder of ``version`` (``00000123`` is version 123)."""
    for p in base.iterdir():
        if p.name.isdigit() and int(p.name) == version:
            return p.name
    return str(version)


def _evaluation(uri: str) -> tuple[dict[str, float], dict[str, float]]:
    """Overall-slice TFMA metrics of the candidate and of its baseline (when it had one)."""
    from components import evaluation_table  # TFMA: only when metrics are listed

    try:
        rows = evaluation_table.overall_metrics(uri)
    except Exception:  # a missing or unreadable evaluation: the version is listed without it
        return {}, {}
    candidate = {r.name: r.candidate for r in rows}
    baseline = {r.name: r.baseline for r in rows if r.baseline is not None}
    return candidate, baseline


def _in_service_since(version: int, history: list[Change]) -> float | None:
    for change in history:
        if version in (change.stable, change.canary):
            return change.time
    return None


__all__ = ["LABELS", "ModelVersion", "Registry", "connect"]
