"""Kubeflow Pipelines settings and the cluster calls: upload, run, daily and triggered runs.

The calls go through the KFP SDK's ``kfp.Client`` (the v2beta1 REST API of Kubeflow
Pipelines 2.x). Settings are one frozen object: defaults < YAML file < environment
variables ``AIQLEADS_KFP__<KEY>`` (for example ``AIQLEADS_KFP__HOST=http://ml-pipeline:8888``).

Every run records why it was started: the reason is a pipeline parameter
(``trigger_reason``, declared by the compiled package, see ``kubeflow_v2_runner``) and part
of the run's display name, so the KFP UI shows it next to the run.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import pathlib
import re
import warnings
from typing import Any

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from aiqleads import settings_io
from aiqleads.errors import ConfigError, ServiceError

ENV_PREFIX = "AIQLEADS_KFP__"
TRIGGER_REASON_PARAMETER = "trigger_reason"
SCHEDULE_REASON = "schedule"
MAX_REASON_CHARS = 200
# KFP's cron has six fields, seconds first (robfig/cron): 03:00:00 UTC every day.
DAILY_AT_3AM = "0 0 3 * * *"
_CRON_FIELD = re.compile(r"^[0-9*?/,\-A-Za-z]+$")
_EQUALS = 1  # Filter predicate operation EQUALS (KFP filter.proto)


class KfpSettings(BaseModel):
    """Where the KFP API is, what to compile in, and how to schedule."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str | None = Field(None, description="KFP API endpoint, e.g. http://ml-pipeline:8888")
    namespace: str | None = Field(None, description="profile namespace (multi-user KFP)")
    pipeline_name: str = Field("aiqleads-recommender", min_length=1, max_length=128)
    experiment: str = Field("aiqleads-recommender", min_length=1, max_length=128)
    image: str = "registry.example.com/aiqleads/recommendations:0.1.0"
    pipeline_root: str = "minio://mlpipeline/v2/artifacts/aiqleads-recommender"
    schedule_name: str = Field("aiqleads-daily-retraining", min_length=1, max_length=128)
    schedule_cron: str = DAILY_AT_3AM
    max_concurrency: int = Field(1, ge=1, le=10)
    service_account: str | None = None
    request_timeout_seconds: float = Field(30.0, gt=0, le=600)

    @pydantic.field_validator("host")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^https?://[^/\s]+", v):
            raise ValueError(f"host must be an http(s) URL, got {v!r}")
        return v.rstrip("/") if v else v

    @pydantic.field_validator("schedule_cron")
    @classmethod
    def _six_field_cron(cls, v: str) -> str:
        fields = v.split()
        if len(fields) != 6 or not all(_CRON_FIELD.match(f) for f in fields):
            raise ValueError(
                f"schedule_cron must have 6 fields (seconds first, KFP format), got {v!r}; "
                f"daily at 03:00 is {DAILY_AT_3AM!r}"
            )
        return v

    @pydantic.field_validator("image")
    @classmethod
    def _pinned_image(cls, v: str) -> str:
        name = v.rsplit("/", 1)[-1]
        if "@sha256:" not in v and (":" not in name or name.endswith(":latest")):
            raise ValueError(f"image must be pinned by tag or digest (not latest), got {v!r}")
        return v


def load_kfp_settings(
    path: str | pathlib.Path | None = None, environ: dict[str, str] | None = None
) -> KfpSettings:
    """Defaults, then the YAML file (if any), then ``AIQLEADS_KFP__*`` variables."""
    return settings_io.load(
        KfpSettings, "KFP settings", path, env_prefix=ENV_PREFIX, environ=environ
    )


def check_reason(reason: str) -> str:
    """A trigger reason is one printable line of at most 200 characters."""
    reason = reason.strip()
    if not reason or len(reason) > MAX_REASON_CHARS or not reason.isprintable():
        raise ConfigError(
            f"the run reason must be one printable line of 1-{MAX_REASON_CHARS} characters, "
            f"got {reason[:40]!r}"
        )
    return reason


def parse_parameters(pairs: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """``key=value`` pairs; values are YAML scalars (``7`` is an int, ``true`` a bool)."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not re.match(r"^[A-Za-z_][A-Za-z0-9_-]*$", key):
            raise ConfigError(f"a parameter is key=value with a plain key, got {pair!r}")
        if key == TRIGGER_REASON_PARAMETER:
            raise ConfigError(f"set {TRIGGER_REASON_PARAMETER} with --reason, not --param")
        params[key] = settings_io.parse_scalar(value, key)
    return params


@dataclasses.dataclass(frozen=True)
class Uploaded:
    pipeline_id: str
    version_id: str | None
    created_pipeline: bool


class KfpClient:
    """The project's calls on a Kubeflow Pipelines 2.x API, through ``kfp.Client``."""

    def __init__(self, settings: KfpSettings) -> None:
        if not settings.host:
            raise ConfigError("no KFP endpoint: set host in the KFP settings or AIQLEADS_KFP__HOST")
        import kfp  # heavy import, only when talking to a cluster
        import urllib3

        self.settings = settings
        try:
            with warnings.catch_warnings():  # "only works with KFP v2.0.0-beta.2 and later"
                warnings.simplefilter("ignore", FutureWarning)
                self._kfp = kfp.Client(
                    host=settings.host, namespace=settings.namespace or "kubeflow"
                )
        except Exception as e:  # the constructor calls /healthz; no cluster means no client
            raise ServiceError(f"cannot reach Kubeflow Pipelines at {settings.host}: {e}") from e
        # kfp.Client has no deadline option: bound every call on its shared connection pool.
        pool = self._kfp._run_api.api_client.rest_client.pool_manager
        pool.connection_pool_kw["timeout"] = urllib3.Timeout(total=settings.request_timeout_seconds)
        pool.connection_pool_kw["retries"] = urllib3.Retry(total=2, backoff_factor=0.5)

    def _call(self, what: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ValueError as e:  # the SDK's own checks (ambiguous names and such)
            raise ServiceError(f"{what}: {e}") from e
        except Exception as e:  # kfp_server_api.ApiException, urllib3 errors
            status = getattr(e, "status", None)
            detail = f"HTTP {status}: {getattr(e, 'body', '')}" if status else str(e)
            raise ServiceError(f"{what} failed at {self.settings.host}: {detail}") from e

    def pipeline_id(self) -> str | None:
        return self._call(
            "finding the pipeline", self._kfp.get_pipeline_id, self.settings.pipeline_name
        )

    def upload(self, package: pathlib.Path, version_name: str) -> Uploaded:
        """A new version of the pipeline; the pipeline itself on the first upload."""
        package = _check_package(package)
        existing = self.pipeline_id()
        if existing is None:
            created = self._call(
                "uploading the pipeline",
                self._kfp.upload_pipeline,
                str(package),
                pipeline_name=self.settings.pipeline_name,
                description="AIQLeads lead recommender: TFX training pipeline",
                namespace=self.settings.namespace,
            )
            return Uploaded(created.pipeline_id, None, True)
        version = self._call(
            "uploading the pipeline version",
            self._kfp.upload_pipeline_version,
            str(package),
            pipeline_version_name=version_name,
            pipeline_id=existing,
        )
        return Uploaded(existing, version.pipeline_version_id, False)

    def latest_version(self, pipeline_id: str) -> str:
        versions = self._call(
            "listing pipeline versions",
            self._kfp.list_pipeline_versions,
            pipeline_id=pipeline_id,
            page_size=1,
            sort_by="created_at desc",
        )
        if not versions.pipeline_versions:
            raise ServiceError(f"pipeline {pipeline_id} has no version: run `aiqleads kfp upload`")
        return versions.pipeline_versions[0].pipeline_version_id

    def _target(self, version_id: str | None) -> tuple[str, str]:
        pipeline_id = self.pipeline_id()
        if pipeline_id is None:
            raise ServiceError(
                f"no pipeline {self.settings.pipeline_name!r} on {self.settings.host}: "
                f"run `aiqleads kfp upload` first"
            )
        return pipeline_id, version_id or self.latest_version(pipeline_id)

    def experiment_id(self) -> str:
        experiment = self._call(
            "getting the experiment",
            self._kfp.create_experiment,
            name=self.settings.experiment,
            namespace=self.settings.namespace,
        )
        return experiment.experiment_id

    def run(
        self,
        reason: str,
        params: dict[str, Any] | None = None,
        version_id: str | None = None,
        now: dt.datetime | None = None,
    ) -> str:
        """Start one run of a pipeline version (the latest by default); returns the run id."""
        reason = check_reason(reason)
        pipeline_id, version_id = self._target(version_id)
        now = now or dt.datetime.now(dt.timezone.utc)
        run = self._call(
            "creating the run",
            self._kfp.run_pipeline,
            experiment_id=self.experiment_id(),
            job_name=f"{self.settings.pipeline_name} {now:%Y-%m-%dT%H:%M:%SZ} ({reason})"[:128],
            params={**(params or {}), TRIGGER_REASON_PARAMETER: reason},
            pipeline_id=pipeline_id,
            version_id=version_id,
            pipeline_root=self.settings.pipeline_root,
            service_account=self.settings.service_account,
        )
        return run.run_id

    def existing_schedule(self, experiment_id: str) -> str | None:
        name_filter = json.dumps(
            {
                "predicates": [
                    {
                        "operation": _EQUALS,
                        "key": "display_name",
                        "stringValue": self.settings.schedule_name,
                    }
                ]
            }
        )
        found = self._call(
            "listing recurring runs",
            self._kfp.list_recurring_runs,
            experiment_id=experiment_id,
            filter=name_filter,
        )
        runs = found.recurring_runs or []
        return runs[0].recurring_run_id if runs else None

    def schedule(
        self, version_id: str | None = None, replace: bool = False
    ) -> tuple[str, str | None]:
        """The daily recurring run (cron from settings); returns (new id, replaced id)."""
        pipeline_id, version_id = self._target(version_id)
        experiment_id = self.experiment_id()
        replaced = self.existing_schedule(experiment_id)
        if replaced and not replace:
            raise ServiceError(
                f"recurring run {self.settings.schedule_name!r} exists ({replaced}); "
                f"pass --replace to swap it for the new version"
            )
        if replaced:
            self._call("deleting the old recurring run", self._kfp.delete_recurring_run, replaced)
        recurring = self._call(
            "creating the recurring run",
            self._kfp.create_recurring_run,
            experiment_id=experiment_id,
            job_name=self.settings.schedule_name,
            description=f"daily retraining, cron {self.settings.schedule_cron!r} (UTC)",
            cron_expression=self.settings.schedule_cron,
            max_concurrency=self.settings.max_concurrency,
            no_catchup=True,
            params={TRIGGER_REASON_PARAMETER: SCHEDULE_REASON},
            pipeline_id=pipeline_id,
            version_id=version_id,
            pipeline_root=self.settings.pipeline_root,
            service_account=self.settings.service_account,
        )
        return recurring.recurring_run_id, replaced


def _check_package(package: pathlib.Path) -> pathlib.Path:
    package = pathlib.Path(package)
    if not package.is_file():
        raise ConfigError(f"no pipeline package at {package}: run `aiqleads pipeline compile`")
    if package.suffix not in (".yaml", ".yml"):
        raise ConfigError(f"a KFP 2.x package is a .yaml PipelineSpec, got {package.name}")
    return package
