"""Settings of the whole serving stack: one typed, frozen, validated object.

The local launcher (`serving.launcher`), the Envoy config generator (`serving.envoy`) and the
Kubernetes manifests read the same `ServingSettings`, so a port, a replica count or a timeout
is defined once. Load it from YAML with `load_settings(path)`; unknown keys are errors.

Each default is declared once. `GatewayOptions` holds the gateway settings every replica of a
stack shares; `GatewaySettings` (here: replicas, base ports) and the gateway process's own
`GatewayConfig` (`serving.gateway.config`: addresses, timeouts, logs) extend it, and the
gateway's command-line flags are derived from `GatewayConfig`'s fields.

A port of 0 means "pick a free loopback port at start" (local runs only); the front listener
defaults to 127.0.0.1:8080 for REST and gRPC alike.
"""

from __future__ import annotations

import pathlib
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from aiqleads import settings_io
from serving.fields import at_most, bounded, port_field

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
MODEL_NAME = "lead_recommender"
WHAT = "serving settings"
# Where the pipeline's Pusher writes versioned SavedModels: <base>/<version>/saved_model.pb.
DEFAULT_MODEL_BASE_PATH = REPO_ROOT / "runs" / "serving_models" / MODEL_NAME
DEFAULT_RUN_DIR = REPO_ROOT / "runs" / "serve"
FRONT_PORT = 8080
# A gateway process on its own (and in the Kubernetes manifests) listens here: off TF
# Serving's 8500 (gRPC) and 8501 (REST), which a model server on the same host takes.
GATEWAY_REST_PORT = 8000
GATEWAY_GRPC_PORT = 8001

Port = int
TRIGGER_PATHS = ("data_dir", "pipeline_config", "kfp_config")  # relative to a settings file
FEATURE_STORE_PATHS = ("data_dir",)
ModelName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RedisSettings(_Frozen):
    """The prediction cache and online feature store."""

    host: str = "127.0.0.1"
    port: Port = port_field(0, "Redis port; 0 picks a free port")
    db: int = bounded(0, 0, 15)
    max_memory_mb: int = bounded(256, 16, 65536)

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/{self.db}"


class ModelServerSettings(_Frozen):
    """TF-Serving-compatible model servers (or the real `tensorflow_model_server`)."""

    replicas: int = bounded(2, 1, 16)
    grpc_port: Port = port_field(0, "gRPC port of replica 0; 0 picks free ports")
    rest_port: Port = port_field(0, "REST port of replica 0; 0 picks free ports")
    enable_batching: bool = False
    session_parallelism: int = bounded(
        0,
        0,
        64,
        "Threads of each model server's TensorFlow session runs "
        "(--tensorflow_session_parallelism; 0 lets TensorFlow pick: one per core).",
    )
    file_system_poll_wait_seconds: int = bounded(2, 1, 3600)
    model_config_poll_seconds: int = bounded(
        1,
        1,
        3600,
        "How often the model servers re-read the deployment's models.config "
        "(labels and loaded versions); a rollback waits at most this plus a gateway refresh.",
    )


class GatewayOptions(_Frozen):
    """What a gateway process takes as flags and every gateway replica of a stack shares."""

    cache_ttl_seconds: int = bounded(300, 1, 86400, "How long an answer stays in Redis.")
    local_cache_entries: int = bounded(
        10_000, 0, 10_000_000, "Answers kept in process in front of Redis (0 turns the tier off)."
    )
    local_cache_ttl_seconds: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="How long an answer stays in the in-process cache (at most cache_ttl_seconds).",
    )
    online_mirror_entries: int = bounded(
        100_000,
        0,
        10_000_000,
        "Online store rows kept in process until Redis reports them changed (client "
        "tracking): a repeat user's features cost no round trip (0 turns the mirror off).",
    )
    canary_fraction: float = bounded(
        0.0, 0.0, 1.0, "Share of users (by hash of user_id) sent to the 'canary' label."
    )
    model_timeout_ms: int = bounded(
        500,
        10,
        60_000,
        "Deadline of one model server call; in a stack, below Envoy's per-try timeout.",
    )
    event_loop: Literal["uvloop", "asyncio"] = Field(
        "uvloop",
        description="uvloop (libuv) costs less CPU per request than the standard asyncio loop.",
    )
    impression_queue: int = bounded(
        10_000,
        1,
        1_000_000,
        "Answers waiting to be logged as impressions; beyond it they are dropped "
        "and counted (an overloaded event store never slows the answers).",
    )
    impression_batch: int = bounded(
        256, 1, 10_000, "Impressions written to the event store per round trip."
    )
    feedback_dedup_seconds: int = bounded(
        86_400,
        60,
        30 * 86_400,
        "How long the event store remembers a feedback id (a retry within it is "
        "recorded once; ingestion deduplicates for ever).",
    )

    # The in-process tier expires before Redis does.
    _local_ttl_within_redis_ttl = at_most("local_cache_ttl_seconds", "cache_ttl_seconds")


class GatewaySettings(GatewayOptions):
    """Caching gateways: the recommendation API in front of the model servers."""

    replicas: int = bounded(2, 1, 16)
    rest_port: Port = port_field(0, "REST port of replica 0; 0 picks free ports")
    grpc_port: Port = port_field(0, "gRPC port of replica 0; 0 picks free ports")


class EventStoreSettings(_Frozen):
    """The event log: a Redis instance of its own, append-only persistence, no eviction."""

    host: str = "127.0.0.1"
    port: Port = port_field(0, "event store port; 0 picks a free port")
    max_memory_mb: int = bounded(
        512, 16, 65536, "Beyond it writes fail (feedback answers 503) instead of evicting events."
    )
    appendfsync: Literal["everysec", "always"] = Field(
        "everysec",
        description="everysec: every acknowledged write is in the file before the answer, so "
        "it survives any process crash, and fsync'd within a second (a machine crash may "
        "lose that second); always: fsync before each answer (docs/event_log.md).",
    )

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"


class FeatureStoreSettings(_Frozen):
    """The online feature store: a Redis instance of its own (append-only, no eviction: the
    answer cache's LRU would drop features), its streaming updater and materialization."""

    host: str = "127.0.0.1"
    port: Port = port_field(0, "online store port; 0 picks a free port")
    max_memory_mb: int = bounded(
        512, 16, 65536, "Beyond it writes fail (and are retried) instead of evicting features."
    )
    enabled: bool = Field(
        True, description="Run the online store and its updater; the gateways read it."
    )
    data_dir: pathlib.Path | None = Field(
        None,
        description="Data set the updater materializes at start when the store has not "
        "been materialized from it; None: trigger.data_dir.",
    )
    updater_host: str = Field("127.0.0.1", description="Address of the updater's /metrics.")
    updater_port: Port = port_field(0, "the updater's metrics port; 0 picks a free port")

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"


class MonitorSettings(_Frozen):
    """The online-quality monitor (`python -m monitoring`; its flags come from these fields)."""

    host: str = Field("127.0.0.1", description="Address of the metrics endpoint.")
    port: Port = port_field(0, "Metrics port (/metrics); 0 picks a free port.")
    window_seconds: float = Field(
        1800.0,
        gt=0,
        le=7 * 86_400,
        description="Attribution window: feedback later than this after its answer does not count.",
    )
    drift_window_seconds: float = Field(
        600.0,
        gt=0,
        le=86_400,
        description="Served-feature drift: the impressions of the last this many seconds are "
        "compared with the served version's training statistics.",
    )
    drift_interval_seconds: float = Field(
        15.0, gt=0, le=3600, description="How often the served-feature drift is recomputed."
    )
    drift_min_rows: int = bounded(
        200, 1, 10_000_000, "Shown leads needed in the window before a drift value is exported."
    )


class PrometheusSettings(_Frozen):
    """The Prometheus `aiqleads serve` runs (rules and scrape targets from `monitoring/`)."""

    host: str = "127.0.0.1"
    port: Port = port_field(0, "Prometheus web port; 0 picks a free port")
    scrape_interval_seconds: float = bounded(15.0, 0.5, 300)
    evaluation_interval_seconds: float = bounded(15.0, 0.5, 300)
    retention_hours: int = bounded(72, 1, 24 * 90)


class AlertmanagerSettings(_Frozen):
    """The Alertmanager `aiqleads serve` runs: alerts that call for retraining go to the trigger."""

    host: str = "127.0.0.1"
    port: Port = port_field(0, "Alertmanager web port; 0 picks a free port")
    group_wait_seconds: float = bounded(30.0, 0, 3600)
    group_interval_seconds: float = bounded(300.0, 1, 86_400)
    repeat_interval_seconds: float = bounded(4 * 3600.0, 1, 7 * 86_400)


class AlertSettings(_Frozen):
    """Thresholds and durations of the alerting rules (monitoring/rules.py renders them)."""

    availability_slo: float = Field(0.999, gt=0.9, lt=1.0, description="Envoy front listener")
    latency_p95_ms: float = Field(100.0, gt=0, le=60_000)
    min_cache_hit_rate: float = bounded(0.9, 0, 1)
    stale_model_hours: float = Field(26.0, gt=0, le=24 * 30)
    quality_margin: float = Field(
        0.2, gt=0, lt=1, description="Relative drop of CTR or hit rate below its baseline."
    )
    quality_min_impressions: int = Field(
        1000, ge=1, description="Impressions over the quality window before quality alerts."
    )
    quality_window_minutes: float = Field(30.0, gt=0, le=24 * 60)
    quality_baseline_hours: float = Field(24.0, gt=0, le=24 * 30)
    for_seconds: float = bounded(
        300.0, 0, 86_400, "How long a health, latency or cache alert holds."
    )
    drift_for_seconds: float = bounded(
        600.0, 0, 86_400, "How long served-feature drift holds before it fires."
    )
    quality_for_seconds: float = bounded(900.0, 0, 86_400)
    rate_window_seconds: float = bounded(
        300.0, 10, 3600, "Range of the rate() windows of latency and cache."
    )


class TriggerSettings(_Frozen):
    """The retraining trigger (`aiqleads trigger`): Alertmanager's webhook receiver."""

    host: str = Field("127.0.0.1", description="Address of the webhook and /metrics.")
    port: Port = port_field(0, "Webhook and metrics port; 0 picks a free port.")
    runner: Literal["local", "kfp", "none"] = Field(
        "local",
        description="local: events ingest, then pipeline run; kfp: aiqleads kfp run; none: "
        "record the decision only.",
    )
    data_dir: pathlib.Path | None = Field(
        None, description="Data set the local runner ingests into and trains on."
    )
    pipeline_config: pathlib.Path | None = Field(
        None, description="Pipeline config YAML of the local runner."
    )
    kfp_config: pathlib.Path | None = Field(None, description="KFP settings of the kfp runner.")
    min_interval_seconds: float = bounded(
        3600.0, 0, 7 * 86_400, "Least time between two runs' starts."
    )
    run_timeout_seconds: float = Field(
        7200.0, gt=0, le=86_400, description="A run still going after this is stopped and failed."
    )


class RateLimitSettings(_Frozen):
    """Envoy's local rate limit (a token bucket per Envoy worker set)."""

    requests_per_second: int = bounded(2000, 1, 1_000_000)
    burst: int = bounded(4000, 1, 1_000_000)

    @field_validator("burst")
    @classmethod
    def _burst_covers_rate(cls, v: int, info: ValidationInfo) -> int:
        rate = info.data.get("requests_per_second")
        if rate is not None and v < rate:
            raise ValueError(f"burst ({v}) must be >= requests_per_second ({rate})")
        return v


class AuthSettings(_Frozen):
    """Authentication at the front door: Envoy verifies JWTs against a local JWKS, allows each
    route to one scope, and limits each client (the token's subject) on its own
    (docs/security.md)."""

    enabled: bool = Field(
        True,
        description="Require a token on every API route; off only for a test that says why.",
    )
    jwks_file: pathlib.Path | None = Field(
        None,
        description="The public keys tokens are verified with (`aiqleads serve` writes "
        "<run_dir>/secrets/jwks.json; the manifests mount the Secret aiqleads-auth).",
    )
    dev_token_hours: float = Field(
        720.0, gt=0, le=24 * 365, description="Lifetime of the token `aiqleads serve` issues."
    )
    client_rate_limit: RateLimitSettings = Field(
        RateLimitSettings(requests_per_second=1000, burst=2000),
        description="Token bucket of each client; the envoy.rate_limit bucket stays the "
        "backstop for all of them together.",
    )
    max_clients: int = bounded(
        10_000,
        1,
        1_000_000,
        "Clients with a bucket of their own at once (least recently used beyond).",
    )
    clock_skew_seconds: int = bounded(
        30, 0, 300, "How far a token's exp and nbf may be off Envoy's clock."
    )
    verified_token_cache: int = bounded(
        1000,
        0,
        100_000,
        "Verified tokens each Envoy worker keeps (0: verify every signature); a "
        "cached token is still refused once it expires.",
    )


class HealthCheckSettings(_Frozen):
    """Active health checks Envoy runs against every gateway and model server."""

    interval_ms: int = bounded(2000, 50, 300_000)
    timeout_ms: int = bounded(1000, 10, 60_000)
    unhealthy_threshold: int = bounded(2, 1, 100)
    healthy_threshold: int = bounded(1, 1, 100)


class TlsSettings(_Frozen):
    """TLS on the front listener: the files of a ``kubernetes.io/tls`` Secret (cert-manager
    writes one), mounted into Envoy's pod."""

    cert_file: pathlib.Path = Field(description="PEM certificate chain (the Secret's tls.crt).")
    key_file: pathlib.Path = Field(description="PEM private key (the Secret's tls.key).")


class EnvoySettings(_Frozen):
    """The front proxy: one listener for REST and gRPC, an internal one for model servers."""

    host: str = "127.0.0.1"
    port: Port = port_field(FRONT_PORT, "front listener (REST and gRPC)")
    admin_port: Port = port_field(0, "admin (/stats/prometheus); 0 picks a free port")
    admin_host: str = Field(
        "127.0.0.1",
        description="The admin interface binds here, loopback only: it can stop Envoy and "
        "change its runtime; Prometheus scrapes the metrics listener instead.",
    )
    metrics_port: Port = port_field(
        0, "listener that serves only /stats/prometheus (read-only); 0 picks a free port"
    )
    tls: TlsSettings | None = Field(
        None, description="TLS on the front listener (prod); None: plaintext (loopback)."
    )
    model_listener_port: Port = port_field(0, "internal listener the gateways call")
    lb_policy: Literal["ROUND_ROBIN", "LEAST_REQUEST"] = "LEAST_REQUEST"
    request_timeout_ms: int = bounded(2000, 10, 300_000)
    per_try_timeout_ms: int = bounded(700, 10, 300_000)
    connect_timeout_ms: int = bounded(250, 10, 60_000)
    num_retries: int = bounded(2, 0, 10)
    concurrency: int = bounded(2, 1, 64)
    update_merge_window_ms: int = bounded(
        0,
        0,
        60_000,
        "how long Envoy merges health-check changes before its workers see them; 0 "
        "delivers each at once (Envoy's own default of 1 s leaves a replica that turned "
        "healthy out of the load balancer for up to that long, though the admin API "
        "already counts it)",
    )
    access_log: bool = Field(
        True, description="one JSON line per request: replica, tries, response flags"
    )
    max_connections: int = bounded(4096, 1, 1_000_000)
    max_pending_requests: int = bounded(4096, 1, 1_000_000)
    max_downstream_connections: int = bounded(50_000, 1, 1_000_000)
    health_check: HealthCheckSettings = HealthCheckSettings()
    rate_limit: RateLimitSettings = RateLimitSettings()

    _try_within_request = at_most("per_try_timeout_ms", "request_timeout_ms")


class ServingSettings(_Frozen):
    """Everything the serving stack needs, local or on Kubernetes."""

    model_name: ModelName = MODEL_NAME
    model_base_path: pathlib.Path = DEFAULT_MODEL_BASE_PATH
    run_dir: pathlib.Path = DEFAULT_RUN_DIR
    startup_timeout_seconds: float = Field(180.0, gt=0, le=3600)
    stop_timeout_seconds: float = Field(10.0, gt=0, le=300)
    redis: RedisSettings = RedisSettings()
    model_servers: ModelServerSettings = ModelServerSettings()
    gateways: GatewaySettings = GatewaySettings()
    envoy: EnvoySettings = EnvoySettings()
    event_store: EventStoreSettings = EventStoreSettings()
    feature_store: FeatureStoreSettings = FeatureStoreSettings()
    monitor: MonitorSettings = MonitorSettings()
    monitoring: bool = Field(
        True, description="Start Prometheus, Alertmanager and the retraining trigger."
    )
    prometheus: PrometheusSettings = PrometheusSettings()
    alertmanager: AlertmanagerSettings = AlertmanagerSettings()
    alerts: AlertSettings = AlertSettings()
    trigger: TriggerSettings = TriggerSettings()
    auth: AuthSettings = AuthSettings()

    @model_validator(mode="after")
    def _gateway_answers_before_envoy_gives_up(self) -> ServingSettings:
        # A gateway whose model call outlives Envoy's per-try timeout is abandoned mid-answer and
        # the retry lands on another gateway that starts the same computation again.
        if self.gateways.model_timeout_ms >= self.envoy.per_try_timeout_ms:
            raise ValueError(
                f"gateways.model_timeout_ms ({self.gateways.model_timeout_ms}) must be below "
                f"envoy.per_try_timeout_ms ({self.envoy.per_try_timeout_ms})"
            )
        return self

    def with_overrides(self, **changes: object) -> ServingSettings:
        """A validated copy with dotted-path overrides, e.g. ``{"envoy.port": 9000}``."""
        data = self.model_dump()
        for dotted, value in changes.items():
            node = data
            *parents, leaf = dotted.split(".")
            for key in parents:
                node = node[key]
            node[leaf] = value
        return parse_settings(data, source="overrides")


def parse_settings(data: dict[str, Any], source: str = "settings") -> ServingSettings:
    """Validate a mapping into `ServingSettings`, naming every bad field in one line."""
    return settings_io.validate(ServingSettings, data, WHAT, source)


def load_settings(path: pathlib.Path | str | None = None) -> ServingSettings:
    """Settings from a YAML file (relative paths resolve against the file), or the defaults."""
    if path is None:
        return ServingSettings()
    path = pathlib.Path(path)
    data = settings_io.read_yaml_mapping(path, WHAT)
    for key in ("model_base_path", "run_dir"):
        if key in data and not pathlib.Path(str(data[key])).is_absolute():
            data[key] = str((path.parent / str(data[key])).resolve())
    for section, names in (("trigger", TRIGGER_PATHS), ("feature_store", FEATURE_STORE_PATHS)):
        block = data.get(section)
        if isinstance(block, dict):
            for key in names:
                value = block.get(key)
                if value is not None and not pathlib.Path(str(value)).is_absolute():
                    block[key] = str((path.parent / str(value)).resolve())
    return parse_settings(data, source=str(path))
