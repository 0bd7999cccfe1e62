"""The local serving stack: Redis, N model servers, M gateways and Envoy on loopback, the
event store and the online-quality monitor, and (unless ``monitoring`` is off) Prometheus,
Alertmanager and the retraining trigger.

`ServingStack.start()` checks the binaries and the model, picks free ports for every port
left at 0, writes and validates the Envoy config, starts the children, and waits until Envoy
routes to every replica. `supervise()` restarts a crashed child with exponential backoff;
`stop()` ends every child by PID (SIGTERM, then SIGKILL).

Prometheus' and Alertmanager's configs come from the ``monitoring`` layer above this one:
the caller passes a `MonitoringWriter` (``aiqleads serve`` passes
`monitoring.stack_configs.write`), which writes them for the resolved `Topology`.

Children get SIGTERM from the kernel when the thread that started them exits, so call
`start()` and `supervise()` from the thread that lives as long as the stack (the main
thread for `aiqleads serve`).
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib
import signal
import sys
import threading
import time
from collections.abc import Callable

from aiqleads.errors import ServiceError
from aiqleads.events import attribution
from serving import auth, command_lines, stack_file
from serving.deployment import DEPLOYMENT_DIR, Deployment
from serving.envoy.config import (
    CLUSTER_GATEWAY_GRPC,
    CLUSTER_GATEWAY_REST,
    CLUSTER_MODEL_GRPC,
    CLUSTER_MODEL_REST,
    Replica,
    Upstreams,
)
from serving.envoy.runtime import envoy_binary, healthy_members, validate_config, write_config
from serving.feature_store.metrics import READY as UPDATER_READY
from serving.model_server.config import PROMETHEUS_PATH, monitoring_config_text
from serving.process import Child, find_binary, free_port, http_status, redis_ping, wait_until
from serving.settings import ServingSettings

MAX_BACKOFF_SECONDS = 10.0
STORES = ("redis", "event-store", "online-store")  # stopped after all that write to them
ATTRIBUTION_KEY_FILE = "attribution.key"
ENVOY_LOG_LEVEL = "warning"
GATEWAY_PREFIX = "gateway-"
STABLE_AFTER_SECONDS = 30.0  # a child that ran this long restarts without accumulated backoff
MONITORING_CHILDREN = ("trigger", "alertmanager", "prometheus")
DEPLOYMENT_ACTOR = "aiqleads serve"
ALERTMANAGER_BINARIES = ("prometheus-alertmanager", "alertmanager")


def model_versions(base_path: pathlib.Path) -> list[int]:
    """Versions under a model base path (`<base>/<version>/saved_model.pb`), ascending."""
    if not base_path.is_dir():
        return []
    return sorted(
        int(p.name)
        for p in base_path.iterdir()
        if p.name.isdigit() and (p / "saved_model.pb").is_file()
    )


def require_model(base_path: pathlib.Path) -> int:
    """The latest version under ``base_path``, or a ServiceError that says how to get one."""
    versions = model_versions(base_path)
    if not versions:
        raise ServiceError(
            f"no model version under {base_path}: run `aiqleads pipeline run` (or `make demo`)"
            " to train and push one, or pass --model-base-path"
        )
    return versions[-1]


def _ports(base: int, count: int) -> list[int]:
    return [base + i for i in range(count)] if base else [free_port() for _ in range(count)]


@dataclasses.dataclass(frozen=True)
class Topology:
    """Concrete addresses of one stack: settings with every port resolved, and replicas."""

    settings: ServingSettings
    model_servers: tuple[Replica, ...]
    gateways: tuple[Replica, ...]

    @property
    def upstreams(self) -> Upstreams:
        return Upstreams(gateways=self.gateways, model_servers=self.model_servers)


@dataclasses.dataclass(frozen=True)
class MonitoringFiles:
    """Where a `MonitoringWriter` put the configs of Prometheus and Alertmanager."""

    prometheus_config: pathlib.Path
    alertmanager_config: pathlib.Path


MonitoringWriter = Callable[[Topology], MonitoringFiles]


def resolve_topology(settings: ServingSettings) -> Topology:
    """Fill every port left at 0 with a free loopback port."""
    env, ms, gw = settings.envoy, settings.model_servers, settings.gateways
    resolved = settings.with_overrides(
        **{
            "redis.port": settings.redis.port or free_port(),
            "envoy.port": env.port or free_port(),
            "envoy.admin_port": env.admin_port or free_port(),
            "envoy.model_listener_port": env.model_listener_port or free_port(),
            "envoy.metrics_port": env.metrics_port or free_port(),
            # The key pair and the token `aiqleads serve` creates live in the run dir.
            "auth.jwks_file": str(
                settings.auth.jwks_file or auth.secrets_dir(settings.run_dir) / auth.JWKS_FILE
            ),
            "event_store.port": settings.event_store.port or free_port(),
            "monitor.port": settings.monitor.port or free_port(),
            "prometheus.port": settings.prometheus.port or free_port(),
            "alertmanager.port": settings.alertmanager.port or free_port(),
            "trigger.port": settings.trigger.port or free_port(),
            "feature_store.port": settings.feature_store.port or free_port(),
            "feature_store.updater_port": settings.feature_store.updater_port or free_port(),
        }
    )

    def replicas(grpc_base: int, rest_base: int, count: int) -> tuple[Replica, ...]:
        pairs = zip(_ports(grpc_base, count), _ports(rest_base, count), strict=True)
        return tuple(Replica("127.0.0.1", g, r) for g, r in pairs)

    return Topology(
        settings=resolved,
        model_servers=replicas(ms.grpc_port, ms.rest_port, ms.replicas),
        gateways=replicas(gw.grpc_port, gw.rest_port, gw.replicas),
    )


class ServingStack:
    """Start, supervise and stop the local stack described by ``settings``."""

    def __init__(
        self,
        settings: ServingSettings,
        progress: Callable[[str], None] = print,
        monitoring: MonitoringWriter | None = None,
    ) -> None:
        self.topology = resolve_topology(settings)
        self.settings = self.topology.settings
        self.progress = progress
        # Prometheus, Alertmanager and the trigger run when the settings ask for them and the
        # caller can write their configs.
        self.monitoring = monitoring if self.settings.monitoring else None
        # Labels, loaded versions and the canary's share: kept in the run dir across restarts.
        self.deployment = Deployment(
            self.settings.run_dir / DEPLOYMENT_DIR, self.settings.model_name
        )
        self.children: list[Child] = []
        self.restart_log: list[tuple[float, str]] = []  # (monotonic time, child name)
        self._backoff: dict[str, float] = {}
        self._restart_at: dict[str, float] = {}
        self._started_at: dict[str, float] = {}
        self.stopping = threading.Event()  # set to abandon a startup in progress
        # The development key pair and token (auth on, JWKS in the run dir); set by start().
        self.credentials: auth.DevCredentials | None = None

    @property
    def token(self) -> str | None:
        """The development token (every scope, every user), once started with auth on."""
        return self.credentials.token if self.credentials is not None else None

    def auth_headers(self) -> dict[str, str]:
        """The header that authenticates a call through Envoy (empty with auth off)."""
        return auth.bearer(self.token) if self.token is not None else {}

    # -- construction ------------------------------------------------------------------
    def _children(self) -> list[Child]:
        s, topo = self.settings, self.topology
        logs = s.run_dir / "logs"
        redis_dir = s.run_dir / "redis"
        redis_dir.mkdir(parents=True, exist_ok=True)
        events_dir = s.run_dir / "events"  # kept across restarts: the acknowledged events
        events_dir.mkdir(parents=True, exist_ok=True)
        # Signs request ids; kept across restarts so earlier answers' feedback still verifies.
        key_file = attribution.create_key_file(s.run_dir / "secrets" / ATTRIBUTION_KEY_FILE)
        redis_bin = find_binary("redis-server", "the Debian package redis-server")
        model_server_bin = find_binary("aiqleads-model-server", "the project (pip install -e .)")
        monitoring = s.run_dir / "model-server-monitoring.config"
        monitoring.write_text(monitoring_config_text())  # Prometheus metrics, as in Kubernetes
        children = [
            Child(
                "redis",
                [
                    redis_bin,
                    *command_lines.redis_args(s.redis, bind=s.redis.host, directory=redis_dir),
                ],
                logs / "redis.log",
                lambda: redis_ping(s.redis.host, s.redis.port),
            ),
            Child(
                "event-store",
                [
                    redis_bin,
                    *command_lines.event_store_args(
                        s.event_store, bind=s.event_store.host, directory=events_dir
                    ),
                ],
                logs / "event-store.log",
                # PING answers only once the append-only file is loaded.
                lambda: redis_ping(s.event_store.host, s.event_store.port),
            ),
        ]
        if s.feature_store.enabled:
            children += self._feature_store_children(redis_bin, logs)
        for i, r in enumerate(topo.model_servers):
            # --host: loopback only (TF Serving itself binds 0.0.0.0)
            args = command_lines.model_server_args(
                s,
                r.grpc_port,
                r.rest_port,
                monitoring,
                host=r.host,
                model_config=command_lines.ModelConfigFile(
                    str(self.deployment.config_path), s.model_servers.model_config_poll_seconds
                ),
            )
            url = f"http://{r.host}:{r.rest_port}/v1/models/{s.model_name}"
            children.append(
                Child(
                    f"model-server-{i}",
                    [model_server_bin, *args],
                    logs / f"model-server-{i}.log",
                    functools.partial(_model_available, url),
                    env={"TF_CPP_MIN_LOG_LEVEL": "2"},
                )
            )
        if s.auth.enabled and s.auth.jwks_file == auth.secrets_dir(s.run_dir) / auth.JWKS_FILE:
            # The run dir's own key pair (kept) and a fresh development token.
            self.credentials = auth.ensure_dev_credentials(s.run_dir, s.auth.dev_token_hours * 3600)
        config = write_config(s.run_dir / "envoy.yaml", s, topo.upstreams, logs)
        validate_config(config)
        admin = f"http://{s.envoy.host}:{s.envoy.admin_port}"
        children.append(
            Child(
                "envoy",
                [
                    envoy_binary(),
                    *command_lines.envoy_args(
                        config, s.envoy.concurrency, ENVOY_LOG_LEVEL, hot_restart=False
                    ),
                ],
                logs / "envoy.log",
                lambda: http_status(f"{admin}/ready")[0] == 200,
            )
        )
        model_address = f"{s.envoy.host}:{s.envoy.model_listener_port}"
        for i, r in enumerate(topo.gateways):
            args = command_lines.gateway_args(
                s,
                host=r.host,
                rest_port=r.rest_port,
                grpc_port=r.grpc_port,
                redis_url=s.redis.url,
                model_server=model_address,
                event_store_url=s.event_store.url,
                online_store_url=s.feature_store.url if s.feature_store.enabled else None,
                attribution_key_file=key_file,
                canary_fraction_file=self.deployment.canary_path,
                drain_seconds=command_lines.gateway_drain_seconds(s),
            )
            url = f"http://{r.host}:{r.rest_port}/healthz"
            children.append(
                Child(
                    f"gateway-{i}",
                    [sys.executable, "-m", command_lines.GATEWAY_MODULE, *args],
                    logs / f"gateway-{i}.log",
                    functools.partial(_answers_ok, url),
                    env={"TF_CPP_MIN_LOG_LEVEL": "2"},
                )
            )
        monitor = s.monitor
        children.append(
            Child(
                "monitor",
                [
                    sys.executable,
                    "-m",
                    command_lines.MONITOR_MODULE,
                    *command_lines.monitor_args(
                        s, host=monitor.host, port=monitor.port, event_store_url=s.event_store.url
                    ),
                ],
                logs / "monitor.log",
                lambda: http_status(f"http://{monitor.host}:{monitor.port}/metrics")[0] == 200,
            )
        )
        if self.monitoring is not None:
            children += self._monitoring_children(self.monitoring(topo), logs)
        return children

    def _feature_store_children(self, redis_bin: str, logs: pathlib.Path) -> list[Child]:
        """The online feature store and its streaming updater (which materializes the data
        set first when the store holds nothing of its newest complete span)."""
        s, store = self.settings, self.settings.feature_store
        store_dir = s.run_dir / "features"  # kept across restarts: the append-only file
        store_dir.mkdir(parents=True, exist_ok=True)
        updater_url = f"http://{store.updater_host}:{store.updater_port}/metrics"
        return [
            Child(
                "online-store",
                [
                    redis_bin,
                    *command_lines.feature_store_args(store, bind=store.host, directory=store_dir),
                ],
                logs / "online-store.log",
                lambda: redis_ping(store.host, store.port),
            ),
            Child(
                "feature-updater",
                [
                    sys.executable,
                    "-m",
                    command_lines.FEATURE_UPDATER_MODULE,
                    *command_lines.feature_updater_args(
                        host=store.updater_host,
                        port=store.updater_port,
                        online_store_url=store.url,
                        event_store_url=s.event_store.url,
                        data_dir=store.data_dir or s.trigger.data_dir,
                    ),
                ],
                logs / "feature-updater.log",
                # Ready once its start-up materialization is done: answers read the store.
                lambda: f"{UPDATER_READY} 1.0".encode() in http_status(updater_url)[1],
            ),
        ]

    def _monitoring_children(self, files: MonitoringFiles, logs: pathlib.Path) -> list[Child]:
        """The trigger, Alertmanager (which calls it) and Prometheus (which alerts it)."""
        s = self.settings
        trigger, am, prom = s.trigger, s.alertmanager, s.prometheus
        trigger_args = command_lines.trigger_args(
            s,
            host=trigger.host,
            port=trigger.port,
            state_dir=s.run_dir / "trigger",
            event_store_url=s.event_store.url,
        )
        am_bin = _alertmanager_binary()
        prom_bin = find_binary("prometheus", "the Debian package prometheus")
        am_url, prom_url = f"http://{am.host}:{am.port}", f"http://{prom.host}:{prom.port}"
        return [
            Child(
                "trigger",
                [sys.executable, "-m", command_lines.TRIGGER_MODULE, *trigger_args],
                logs / "trigger.log",
                lambda: http_status(f"http://{trigger.host}:{trigger.port}/healthz")[0] == 200,
            ),
            Child(
                "alertmanager",
                [
                    am_bin,
                    *command_lines.alertmanager_args(
                        files.alertmanager_config,
                        s.run_dir / "alertmanager",
                        listen=f"{am.host}:{am.port}",
                    ),
                ],
                logs / "alertmanager.log",
                lambda: http_status(f"{am_url}/-/ready")[0] == 200,
            ),
            Child(
                "prometheus",
                [
                    prom_bin,
                    *command_lines.prometheus_args(
                        files.prometheus_config,
                        s.run_dir / "prometheus",
                        listen=f"{prom.host}:{prom.port}",
                        retention_hours=prom.retention_hours,
                    ),
                ],
                logs / "prometheus.log",
                lambda: http_status(f"{prom_url}/-/ready")[0] == 200,
            ),
        ]

    def addresses(self) -> stack_file.StackAddresses:
        s = self.settings
        on = self.monitoring is not None
        return stack_file.StackAddresses(
            front_url=f"http://{s.envoy.host}:{s.envoy.port}",
            event_store_url=s.event_store.url,
            monitor_url=f"http://{s.monitor.host}:{s.monitor.port}",
            prometheus_url=f"http://{s.prometheus.host}:{s.prometheus.port}" if on else None,
            alertmanager_url=f"http://{s.alertmanager.host}:{s.alertmanager.port}" if on else None,
            trigger_url=f"http://{s.trigger.host}:{s.trigger.port}" if on else None,
            online_store_url=s.feature_store.url if s.feature_store.enabled else None,
        )

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        """Start every child and wait until Envoy routes to all replicas; stop all on failure."""
        s = self.settings
        version = require_model(s.model_base_path)
        # A new run dir (or a new base path) starts with the latest version as stable; an
        # existing deployment keeps its labels (a corrupt one stops the start, named).
        self.deployment.initialize(
            s.model_base_path,
            version,
            s.gateways.canary_fraction,
            DEPLOYMENT_ACTOR,
            f"first start on {s.model_base_path}: the latest pushed version is stable",
        )
        state = self.deployment.state()
        canary = ""
        if state.canary is not None:
            canary = f", canary {state.canary} for {state.canary_fraction:.0%} of users"
        self.progress(
            f"model {s.model_name} stable {state.stable}{canary} from {s.model_base_path} "
            f"(labels in {self.deployment.config_path})"
        )
        self.children = self._children()
        deadline = time.monotonic() + s.startup_timeout_seconds
        try:
            for child in self.children:
                child.start()
                self._started_at[child.name] = time.monotonic()
            for child in self.children:
                self._wait_ready(child, deadline)
            waited = wait_until(
                lambda: self._check_stopping() or self.fully_routed(),
                max(deadline - time.monotonic(), 1),
                "envoy routing to every replica",
            )
            self.progress(f"envoy routes to every replica ({waited:.1f} s)")
            stack_file.write(s.run_dir, self.addresses())
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, child: Child, deadline: float) -> None:
        def ready() -> bool:
            self._check_stopping()
            if child.exit_code() is not None:
                raise ServiceError(
                    f"{child.name} exited with code {child.exit_code()} during startup "
                    f"(log {child.log_path}): {child.log_tail(1)}"
                )
            return child.ready()

        waited = wait_until(ready, max(deadline - time.monotonic(), 1), child.name, interval=0.2)
        self.progress(f"{child.name} ready (pid {child.pid}, {waited:.1f} s)")

    def _check_stopping(self) -> bool:
        if self.stopping.is_set():
            raise KeyboardInterrupt("stopped during startup")
        return False

    def fully_routed(self) -> bool:
        """True when every gateway and model server is healthy in Envoy's clusters."""
        admin = self.settings.envoy.admin_port
        want = {
            CLUSTER_GATEWAY_REST: len(self.topology.gateways),
            CLUSTER_GATEWAY_GRPC: len(self.topology.gateways),
            CLUSTER_MODEL_GRPC: len(self.topology.model_servers),
            CLUSTER_MODEL_REST: len(self.topology.model_servers),
        }
        return all(healthy_members(admin, c) == n for c, n in want.items())

    def child(self, name: str) -> Child:
        return next(c for c in self.children if c.name == name)

    def endpoints(self) -> dict[str, str]:
        """Human-readable addresses of the stack, front door first."""
        s, topo = self.settings, self.topology
        front = f"{s.envoy.host}:{s.envoy.port}"
        out = {
            "REST": f"http://{front}/v1/recommendations",
            "gRPC": f"{front} (aiqleads.recommendations.v1.Recommendations)",
            "Envoy admin": f"http://{s.envoy.admin_host}:{s.envoy.admin_port}/ (loopback only)",
            "Envoy metrics": f"http://{s.envoy.host}:{s.envoy.metrics_port}/stats/prometheus",
            "Redis": s.redis.url,
            "Event store": f"{s.event_store.url} (append-only, {s.run_dir / 'events'})",
            **(
                {
                    "Online features": f"{s.feature_store.url} (append-only, "
                    f"{s.run_dir / 'features'}; updater http://{s.feature_store.updater_host}:"
                    f"{s.feature_store.updater_port}/metrics)"
                }
                if s.feature_store.enabled
                else {}
            ),
            "Online quality": f"http://{s.monitor.host}:{s.monitor.port}/metrics",
        }
        if self.monitoring is not None:
            out["Prometheus"] = f"http://{s.prometheus.host}:{s.prometheus.port}"
            out["Alertmanager"] = f"http://{s.alertmanager.host}:{s.alertmanager.port}"
            out["Trigger"] = f"http://{s.trigger.host}:{s.trigger.port}/metrics (webhook /alerts)"
        for i, r in enumerate(topo.gateways):
            out[f"gateway-{i}"] = f"http://{r.host}:{r.rest_port}/metrics (gRPC :{r.grpc_port})"
        for i, r in enumerate(topo.model_servers):
            out[f"model-server-{i}"] = (
                f"http://{r.host}:{r.rest_port}/v1/models/{s.model_name} "
                f"(metrics {PROMETHEUS_PATH}, gRPC :{r.grpc_port})"
            )
        return out

    def supervise_once(self) -> None:
        """Restart children that exited, each after its own exponential backoff."""
        now = time.monotonic()
        for child in self.children:
            if child.exit_code() is None:
                continue
            name = child.name
            if name not in self._restart_at:
                ran = now - self._started_at.get(name, now)
                backoff = 0.5 if ran > STABLE_AFTER_SECONDS else self._backoff.get(name, 0.25) * 2
                self._backoff[name] = min(backoff, MAX_BACKOFF_SECONDS)
                self._restart_at[name] = now + self._backoff[name]
                self.progress(
                    f"{name} exited with code {child.exit_code()}; "
                    f"restarting in {self._backoff[name]:.1f} s"
                )
            elif now >= self._restart_at[name]:
                del self._restart_at[name]
                child.restarts += 1
                child.start()
                self._started_at[name] = time.monotonic()
                self.restart_log.append((time.monotonic(), name))
                self.progress(f"{name} restarted (pid {child.pid}, restart #{child.restarts})")

    def supervise(self, stop: threading.Event, poll_seconds: float = 0.1) -> None:
        """Keep the stack up until ``stop`` is set."""
        while not stop.wait(poll_seconds):
            self.supervise_once()

    def stop(self) -> None:
        """Stop every child by PID: SIGTERM, then SIGKILL what outlives the timeout.

        The stores go last, so that gateways finishing their requests can still write
        feedback and queued impressions to the event store.
        """
        stack_file.remove(self.settings.run_dir)
        deadline = time.monotonic() + self.settings.stop_timeout_seconds
        stores = [c for c in self.children if c.name in STORES]
        for group in ([c for c in self.children if c.name not in STORES], stores):
            for child in reversed(group):
                # SIGINT: a gateway stops without draining (Envoy is going away too).
                gateway = child.name.startswith(GATEWAY_PREFIX)
                child.signal(signal.SIGINT if gateway else signal.SIGTERM)
            for child in reversed(group):
                child.stop(timeout=max(deadline - time.monotonic(), 0.1))

    def __enter__(self) -> ServingStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _alertmanager_binary() -> str:
    """Debian names it ``prometheus-alertmanager``; upstream builds ``alertmanager``."""
    what = "the Debian package prometheus-alertmanager"
    try:
        return find_binary(ALERTMANAGER_BINARIES[0], what)
    except ServiceError:
        return find_binary(ALERTMANAGER_BINARIES[1], what)


def _answers_ok(url: str) -> bool:
    return http_status(url)[0] == 200


def _model_available(url: str) -> bool:
    status, body = http_status(url)
    return status == 200 and b"AVAILABLE" in body


def serve_forever(stack: ServingStack, on_ready: Callable[[], None] | None = None) -> None:
    """Start, call ``on_ready``, supervise until SIGINT/SIGTERM, then stop everything.

    Installs signal handlers, so call it from the main thread.
    """
    stop = stack.stopping
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        stack.start()
        if on_ready is not None:
            on_ready()
        if not stop.is_set():
            stack.progress("serving; Ctrl-C or SIGTERM stops every process")
            stack.supervise(stop)
    except KeyboardInterrupt:
        if not stop.is_set():  # a real Ctrl-C outside our handlers: let the caller see it
            raise
        # SIGINT/SIGTERM during startup: a requested stop, not a failure.
    finally:
        if any(c.pid for c in stack.children):
            stack.progress("stopping")
        stack.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
