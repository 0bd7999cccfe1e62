"""Generate the per-overlay Kubernetes files from the serving settings; create local secrets.

Each overlay (``kustomize/overlays/<env>/``) holds a ``serving.yaml`` in the schema of
``serving.settings.ServingSettings`` (the one the local launcher reads). From it this script
writes ``generated/``:

- ``envoy.yaml``: the Envoy bootstrap from ``serving.envoy.config`` with Kubernetes service
  addresses (STRICT_DNS on the headless services of the overlay's namespace);
- ``monitoring.config``: TF Serving's ``MonitoringConfig`` text proto;
- ``workloads.yaml``: strategic-merge patches with the replica counts and container
  arguments (ports, poll intervals, cache limits) of every workload;
- ``prometheus.yml``, ``aiqleads.rules.yml``, ``alertmanager.yml``: Prometheus' scrape
  configuration and rules and Alertmanager's routing to the trigger (``monitoring/``);
- ``grafana-datasources.yaml``, ``grafana-providers.yaml`` and one JSON per dashboard of
  ``monitoring/dashboards.py``: Grafana's provisioning.

Usage::

    python kustomize/generate.py            # rewrite generated/ of every overlay
    python kustomize/generate.py --check    # exit 1 if a committed file is stale
    python kustomize/generate.py secrets --overlay prod   # overlays/prod/*.env

The secrets command writes random values (the Redis, event-store and online-store passwords,
the key that signs request ids) to env files that git ignores (``redis.env``,
``events.env``, ``features.env``); the overlay's ``secretGenerator``s read them. Nothing
secret is ever committed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import secrets
import sys

import yaml
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from aiqleads.errors import ConfigError
from monitoring import alertmanager, dashboards, prometheus, rules
from serving import auth, command_lines
from serving.deployment import CANARY_FILE, FRACTION_KEY
from serving.envoy.config import kubernetes_upstreams, render_envoy_config
from serving.model_server.config import monitoring_config_text
from serving.settings import ServingSettings, load_settings

KUSTOMIZE_DIR = pathlib.Path(__file__).resolve().parent
OVERLAYS_DIR = KUSTOMIZE_DIR / "overlays"
SETTINGS_FILE = "serving.yaml"
GENERATED_DIR = "generated"
SECRET_ENV_FILE = "redis.env"
SECRET_KEY = "REDIS_PASSWORD"
EVENTS_ENV_FILE = "events.env"  # the event store's password and the request-id signing key
EVENT_STORE_SECRET_KEY = "EVENT_STORE_PASSWORD"
# Read by every gateway from its environment (aiqleads.events.attribution.KEY_ENV).
ATTRIBUTION_SECRET_KEY = "AIQLEADS_ATTRIBUTION_KEY"
FEATURES_ENV_FILE = "features.env"  # the online feature store's password
ONLINE_STORE_SECRET_KEY = "ONLINE_STORE_PASSWORD"
# Passwords reach no process's arguments: the gateways, the monitor and the feature updater
# mount the Secrets' password keys as files here (base/gateway.yaml, base/monitor.yaml,
# base/feature-updater.yaml) and read them (--redis-password-file,
# --event-store-password-file, --online-store-password-file); each Redis reads a config
# file that its initContainer renders from the Secret into a memory-backed emptyDir
# (base/redis.yaml, base/event-store.yaml, base/online-store.yaml).
REDIS_PASSWORD_FILE = f"/etc/aiqleads/secrets/redis/{SECRET_KEY}"
EVENT_STORE_PASSWORD_FILE = f"/etc/aiqleads/secrets/events/{EVENT_STORE_SECRET_KEY}"
ONLINE_STORE_PASSWORD_FILE = f"/etc/aiqleads/secrets/features/{ONLINE_STORE_SECRET_KEY}"
REDIS_AUTH_CONFIG = "/run/redis-auth/auth.conf"
SECRET_FILES = {
    SECRET_ENV_FILE: (SECRET_KEY,),
    EVENTS_ENV_FILE: (EVENT_STORE_SECRET_KEY, ATTRIBUTION_SECRET_KEY),
    FEATURES_ENV_FILE: (ONLINE_STORE_SECRET_KEY,),
}
# A store's append-only file, on the PersistentVolumeClaim of its StatefulSet
# (base/event-store.yaml, base/online-store.yaml).
STORE_DATA_DIR = "/data"
# The data volume (aiqleads-data, the daily spans) where the feature updater mounts it
# read-only (base/feature-updater.yaml); feature_store.data_dir must lie under it.
DATA_VOLUME_DIR = "/data"

# Where the ConfigMaps are mounted in the pods (base/*.yaml use the same paths).
MODEL_CONFIG_DIR = "/etc/aiqleads/tf-serving"
MODEL_CONFIG_FILE = "models.config"
MONITORING_CONFIG_FILE = "monitoring.config"
ENVOY_CONFIG_FILE = "envoy.yaml"
WORKLOADS_FILE = "workloads.yaml"
ENVOY_CONFIG_PATH = f"/etc/envoy/{ENVOY_CONFIG_FILE}"
ENVOY_LOG_LEVEL = "info"
POD_HOST = "0.0.0.0"  # a pod's servers listen on every address of the pod
MODEL_CONFIG_POLL_SECONDS = 60
NUM_MODEL_VERSIONS = 2  # before a version is promoted: the newest two
# The overlay's deployment (serving.deployment): models.config with the version labels and
# canary.json, owned by `aiqleads models ... --deployment-dir overlays/<env>/deployment`; this
# script only writes the first one (the newest versions, no labels yet) when there is none.
DEPLOYMENT_DIR = "deployment"
HPA_MAX_FACTOR = 4
HPA_MAX_REPLICAS = 16
ENVOY_INTERNAL_SERVICE = "aiqleads-envoy-internal"
REDIS_SERVICE = "aiqleads-redis"
EVENT_STORE_SERVICE = "aiqleads-event-store"
ONLINE_STORE_SERVICE = "aiqleads-online-store"
FEATURE_UPDATER_DEPLOYMENT = "aiqleads-feature-updater"  # and its Service (/metrics)
# Prometheus' job for the updater, beside monitoring.prometheus's jobs (static, through the
# updater's Service, as the monitor's).
MONITOR_DEPLOYMENT = "aiqleads-monitor"
PROMETHEUS_DEPLOYMENT = "aiqleads-prometheus"
ALERTMANAGER_DEPLOYMENT = "aiqleads-alertmanager"
TRIGGER_DEPLOYMENT = "aiqleads-trigger"
# Monitoring files (ConfigMaps) and where the pods mount them (base/*.yaml use the same).
PROMETHEUS_CONFIG_FILE = "prometheus.yml"
ALERTMANAGER_CONFIG_FILE = "alertmanager.yml"
PROMETHEUS_DIR = "/etc/prometheus"
PROMETHEUS_DATA = "/prometheus"
ALERTMANAGER_DIR = "/etc/alertmanager"
ALERTMANAGER_DATA = "/alertmanager"
TRIGGER_STATE_DIR = "/var/lib/aiqleads-trigger"
GRAFANA_DATASOURCES_FILE = "grafana-datasources.yaml"
GRAFANA_PROVIDERS_FILE = "grafana-providers.yaml"
GRAFANA_DASHBOARDS_DIR = "/var/lib/grafana-dashboards/aiqleads"
MONITORING_SERVICES = {  # the Services of base/ the monitoring settings must name
    "alertmanager": "aiqleads-alertmanager",
    "prometheus": "aiqleads-prometheus",
    "trigger": prometheus.K8S_TRIGGER_SERVICE,
}


def _header(overlay: str, comment: str = "#") -> str:
    return (
        f"{comment} Generated by kustomize/generate.py from overlays/{overlay}/{SETTINGS_FILE};"
        f" do not edit.\n"
    )


def overlay_names() -> list[str]:
    """Every overlay that has a settings file, sorted."""
    return sorted(p.parent.name for p in OVERLAYS_DIR.glob(f"*/{SETTINGS_FILE}"))


def overlay_namespace(overlay_dir: pathlib.Path) -> str:
    """The ``namespace:`` of an overlay's kustomization (the DNS names depend on it)."""
    kustomization = yaml.safe_load((overlay_dir / "kustomization.yaml").read_text())
    namespace = (kustomization or {}).get("namespace")
    if not namespace:
        raise ConfigError(f"{overlay_dir}/kustomization.yaml must set a namespace")
    return str(namespace)


def check_kubernetes_settings(settings: ServingSettings) -> None:
    """Kubernetes needs fixed ports and a model path inside the pod, not a local folder."""
    fixed = {
        "redis.port": settings.redis.port,
        "model_servers.grpc_port": settings.model_servers.grpc_port,
        "model_servers.rest_port": settings.model_servers.rest_port,
        "gateways.rest_port": settings.gateways.rest_port,
        "gateways.grpc_port": settings.gateways.grpc_port,
        "envoy.port": settings.envoy.port,
        "envoy.admin_port": settings.envoy.admin_port,
        "envoy.model_listener_port": settings.envoy.model_listener_port,
        "event_store.port": settings.event_store.port,
        "feature_store.port": settings.feature_store.port,
        "feature_store.updater_port": settings.feature_store.updater_port,
        "monitor.port": settings.monitor.port,
        "prometheus.port": settings.prometheus.port,
        "alertmanager.port": settings.alertmanager.port,
        "trigger.port": settings.trigger.port,
    }
    unset = [name for name, port in fixed.items() if port == 0]
    if unset:
        raise ConfigError(f"Kubernetes settings need fixed ports; set {', '.join(unset)}")
    if settings.event_store.host != EVENT_STORE_SERVICE:
        raise ConfigError(
            f"event_store.host must be the service {EVENT_STORE_SERVICE}, "
            f"got {settings.event_store.host!r}"
        )
    if settings.feature_store.host != ONLINE_STORE_SERVICE:
        raise ConfigError(
            f"feature_store.host must be the service {ONLINE_STORE_SERVICE}, "
            f"got {settings.feature_store.host!r}"
        )
    if settings.monitor.host != POD_HOST:
        raise ConfigError(
            f"monitor.host must be {POD_HOST} in a pod, got {settings.monitor.host!r}"
        )
    for name, host in (
        ("feature_store.updater_host", settings.feature_store.updater_host),
        ("prometheus.host", settings.prometheus.host),
        ("alertmanager.host", settings.alertmanager.host),
        ("trigger.host", settings.trigger.host),
    ):
        if host != POD_HOST:
            raise ConfigError(f"{name} must be {POD_HOST} in a pod, got {host!r}")
    if settings.trigger.runner == "local":
        raise ConfigError("trigger.runner must be kfp (or none) in Kubernetes, not local")
    if settings.envoy.host != POD_HOST:
        raise ConfigError(f"envoy.host must be {POD_HOST} in a pod, got {settings.envoy.host!r}")
    if not str(settings.model_base_path).startswith("/models/"):
        raise ConfigError(
            f"model_base_path must live on the model volume (/models/...), "
            f"got {settings.model_base_path}"
        )
    data_dir = settings.feature_store.data_dir
    if data_dir is not None and not str(data_dir).startswith(f"{DATA_VOLUME_DIR}/"):
        raise ConfigError(
            f"feature_store.data_dir must live on the data volume ({DATA_VOLUME_DIR}/...), "
            f"got {data_dir}"
        )


def model_server_config(settings: ServingSettings) -> model_server_config_pb2.ModelServerConfig:
    """TF Serving's model config: one model on the volume, the newest versions kept."""
    config = model_server_config_pb2.ModelServerConfig()
    model = config.model_config_list.config.add()
    model.name = settings.model_name
    model.base_path = str(settings.model_base_path)
    model.model_platform = "tensorflow"
    model.model_version_policy.latest.num_versions = NUM_MODEL_VERSIONS
    return config


def _deployment_patch(name: str, replicas: int, container: str, args: list[str]) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "template": {"spec": {"containers": [{"name": container, "args": args}]}},
        },
    }


def _hpa_patch(name: str, replicas: int) -> dict:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name},
        "spec": {
            "minReplicas": replicas,
            "maxReplicas": min(HPA_MAX_REPLICAS, replicas * HPA_MAX_FACTOR),
        },
    }


def workload_patches(settings: ServingSettings) -> list[dict]:
    """Replicas and container arguments of every workload, from the settings."""
    ms, gw, env, redis = settings.model_servers, settings.gateways, settings.envoy, settings.redis
    model_server_args = command_lines.model_server_args(
        settings,
        ms.grpc_port,
        ms.rest_port,
        f"{MODEL_CONFIG_DIR}/{MONITORING_CONFIG_FILE}",
        model_config=command_lines.ModelConfigFile(
            f"{MODEL_CONFIG_DIR}/{MODEL_CONFIG_FILE}", MODEL_CONFIG_POLL_SECONDS
        ),
    )
    redis_url = f"redis://{redis.host}:{redis.port}/{redis.db}"  # the password: from a file
    store, features = settings.event_store, settings.feature_store
    event_store_url = f"redis://{EVENT_STORE_SERVICE}:{store.port}/0"
    online_store_url = f"redis://{ONLINE_STORE_SERVICE}:{features.port}/0"
    # feature_store.enabled: false scales the store and its updater to zero, and the
    # gateways answer without online features.
    features_on = features.enabled
    gateway_args = command_lines.gateway_args(
        settings,
        host=POD_HOST,
        rest_port=gw.rest_port,
        grpc_port=gw.grpc_port,
        redis_url=redis_url,
        model_server=f"{ENVOY_INTERNAL_SERVICE}:{env.model_listener_port}",
        event_store_url=event_store_url,  # the signing key comes from the Secret, as env
        online_store_url=online_store_url if features_on else None,
        redis_password_file=REDIS_PASSWORD_FILE,
        event_store_password_file=EVENT_STORE_PASSWORD_FILE,
        online_store_password_file=ONLINE_STORE_PASSWORD_FILE if features_on else None,
        canary_fraction_file=f"{MODEL_CONFIG_DIR}/{CANARY_FILE}",  # the deployment's share
        drain_seconds=command_lines.gateway_drain_seconds(settings),  # with the preStop hook
    )
    envoy_args = command_lines.envoy_args(ENVOY_CONFIG_PATH, env.concurrency, ENVOY_LOG_LEVEL)
    redis_args = command_lines.redis_args(redis, config_file=REDIS_AUTH_CONFIG)
    event_store_args = command_lines.event_store_args(
        store, directory=STORE_DATA_DIR, config_file=REDIS_AUTH_CONFIG
    )
    online_store_args = command_lines.feature_store_args(
        features, directory=STORE_DATA_DIR, config_file=REDIS_AUTH_CONFIG
    )
    updater_args = command_lines.feature_updater_args(
        host=POD_HOST,
        port=features.updater_port,
        online_store_url=online_store_url,
        event_store_url=event_store_url,
        data_dir=features.data_dir,  # None: stream only, no materialization at start
        online_store_password_file=ONLINE_STORE_PASSWORD_FILE,
        event_store_password_file=EVENT_STORE_PASSWORD_FILE,
    )
    monitor_args = command_lines.monitor_args(
        settings,
        host=POD_HOST,
        port=settings.monitor.port,
        event_store_url=event_store_url,
        event_store_password_file=EVENT_STORE_PASSWORD_FILE,
    )
    prom, am = settings.prometheus, settings.alertmanager
    prometheus_args = command_lines.prometheus_args(
        f"{PROMETHEUS_DIR}/{PROMETHEUS_CONFIG_FILE}",
        PROMETHEUS_DATA,
        listen=f"{POD_HOST}:{prom.port}",
        retention_hours=prom.retention_hours,
    )
    alertmanager_args = command_lines.alertmanager_args(
        f"{ALERTMANAGER_DIR}/{ALERTMANAGER_CONFIG_FILE}",
        ALERTMANAGER_DATA,
        listen=f"{POD_HOST}:{am.port}",
    )
    trigger_args = command_lines.trigger_args(
        settings, host=POD_HOST, port=settings.trigger.port, state_dir=TRIGGER_STATE_DIR
    )
    return [
        _deployment_patch("aiqleads-model-server", ms.replicas, "tf-serving", model_server_args),
        _hpa_patch("aiqleads-model-server", ms.replicas),
        _deployment_patch("aiqleads-gateway", gw.replicas, "gateway", gateway_args),
        _hpa_patch("aiqleads-gateway", gw.replicas),
        _deployment_patch("aiqleads-envoy", max(ms.replicas, gw.replicas), "envoy", envoy_args),
        _hpa_patch("aiqleads-envoy", max(ms.replicas, gw.replicas)),
        _statefulset_patch(REDIS_SERVICE, "redis", redis_args),
        _statefulset_patch(EVENT_STORE_SERVICE, "event-store", event_store_args),
        _statefulset_patch(
            ONLINE_STORE_SERVICE, "online-store", online_store_args, replicas=int(features_on)
        ),
        _deployment_patch(
            FEATURE_UPDATER_DEPLOYMENT, int(features_on), "feature-updater", updater_args
        ),
        _deployment_patch(MONITOR_DEPLOYMENT, 1, "monitor", monitor_args),
        _deployment_patch(PROMETHEUS_DEPLOYMENT, 1, "prometheus", prometheus_args),
        _deployment_patch(ALERTMANAGER_DEPLOYMENT, 1, "alertmanager", alertmanager_args),
        _deployment_patch(TRIGGER_DEPLOYMENT, 1, "trigger", trigger_args),
    ]


def monitoring_files(overlay: Overlay) -> dict[str, str]:
    """Prometheus' config and rules, Alertmanager's routing, Grafana's provisioning."""
    s, ns = overlay.settings, overlay.namespace
    am = f"{MONITORING_SERVICES['alertmanager']}:{s.alertmanager.port}"
    prom = prometheus.kubernetes_config(s, ns, [f"{PROMETHEUS_DIR}/{prometheus.RULES_FILE}"], am)
    trigger_url = f"http://{MONITORING_SERVICES['trigger']}:{s.trigger.port}"
    prom_url = f"http://{MONITORING_SERVICES['prometheus']}:{s.prometheus.port}"
    header = _header(overlay.name)
    files = {
        PROMETHEUS_CONFIG_FILE: header + yaml.safe_dump(prom, sort_keys=False),
        prometheus.RULES_FILE: header
        + yaml.safe_dump(rules.rule_groups(s.alerts), sort_keys=False, width=100),
        ALERTMANAGER_CONFIG_FILE: header
        + yaml.safe_dump(alertmanager.config(s.alertmanager, trigger_url), sort_keys=False),
        GRAFANA_DATASOURCES_FILE: header
        + yaml.safe_dump(dashboards.datasource_provisioning(prom_url), sort_keys=False),
        GRAFANA_PROVIDERS_FILE: header
        + yaml.safe_dump(
            dashboards.dashboard_provisioning(GRAFANA_DASHBOARDS_DIR), sort_keys=False
        ),
    }
    for dashboard in dashboards.DASHBOARDS:
        files[f"{dashboard.uid}.json"] = dashboards.render_json(dashboard)
    return files


def _statefulset_patch(
    name: str, container: str, args: list[str], replicas: int | None = None
) -> dict:
    spec: dict = {} if replicas is None else {"replicas": replicas}
    spec["template"] = {"spec": {"containers": [{"name": container, "args": args}]}}
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name},
        "spec": spec,
    }


@dataclasses.dataclass(frozen=True)
class Overlay:
    name: str
    directory: pathlib.Path
    settings: ServingSettings
    namespace: str


def load_overlay(name: str) -> Overlay:
    directory = OVERLAYS_DIR / name
    if not (directory / SETTINGS_FILE).is_file():
        raise ConfigError(f"no overlay {name!r}: expected {directory / SETTINGS_FILE}")
    settings = load_settings(directory / SETTINGS_FILE)
    check_kubernetes_settings(settings)
    return Overlay(name, directory, settings, overlay_namespace(directory))


def render_overlay(overlay: Overlay) -> dict[str, str]:
    """File name (under generated/) -> content, for one overlay."""
    s, name = overlay.settings, overlay.name
    envoy = render_envoy_config(s, kubernetes_upstreams(s, namespace=overlay.namespace))
    patches = yaml.safe_dump_all(workload_patches(s), sort_keys=False)
    return {
        ENVOY_CONFIG_FILE: _header(name) + envoy,
        MONITORING_CONFIG_FILE: _header(name) + monitoring_config_text(),
        WORKLOADS_FILE: _header(name) + patches,
        **monitoring_files(overlay),
    }


def stale_files(overlays: list[str]) -> list[pathlib.Path]:
    """Generated files whose committed content differs from what the settings produce."""
    stale = []
    for name in overlays:
        overlay = load_overlay(name)
        for file_name, content in render_overlay(overlay).items():
            path = overlay.directory / GENERATED_DIR / file_name
            if not path.is_file() or path.read_text() != content:
                stale.append(path)
    return stale


def write_deployment_bootstrap(overlay: Overlay) -> list[pathlib.Path]:
    """The overlay's first deployment files, when it has none: the model config serving the
    newest versions without labels (the gateways then take the latest as stable) and no
    canary. From then on `aiqleads models` owns them (docs/registry.md)."""
    folder = overlay.directory / DEPLOYMENT_DIR
    folder.mkdir(exist_ok=True)
    files = {
        MODEL_CONFIG_FILE: text_format.MessageToString(model_server_config(overlay.settings)),
        CANARY_FILE: json.dumps({FRACTION_KEY: overlay.settings.gateways.canary_fraction}) + "\n",
    }
    written = []
    for file_name, content in files.items():
        path = folder / file_name
        if not path.exists():
            path.write_text(content)
            written.append(path)
    return written


def write_generated(overlays: list[str]) -> list[pathlib.Path]:
    written = []
    for name in overlays:
        overlay = load_overlay(name)
        written += write_deployment_bootstrap(overlay)
        out = overlay.directory / GENERATED_DIR
        out.mkdir(exist_ok=True)
        for file_name, content in render_overlay(overlay).items():
            (out / file_name).write_text(content)
            written.append(out / file_name)
    return written


def write_secret_env(overlay: str, force: bool = False) -> list[tuple[pathlib.Path, bool]]:
    """Write the overlay's Secret env files (``redis.env``, ``events.env``, ``features.env``)
    with random values.

    An existing file keeps its values (``force`` replaces them); a key it lacks is added.
    Returns each file and whether it was written.
    """
    directory = OVERLAYS_DIR / overlay
    if not directory.is_dir():
        raise ConfigError(f"no overlay {overlay!r} under {OVERLAYS_DIR}")
    results = []
    for name, keys in SECRET_FILES.items():
        path = directory / name
        existing = "" if force or not path.exists() else path.read_text()
        have = {line.split("=", 1)[0] for line in existing.splitlines() if "=" in line}
        missing = [k for k in keys if k not in have]
        if not missing:
            results.append((path, False))
            continue
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(existing + "".join(f"{k}={secrets.token_hex(32)}\n" for k in missing))
        results.append((path, True))
    return results


AUTH_ENV_FILE = "auth.env"  # JWKS=<the public keys, one line of JSON>; Secret aiqleads-auth
AUTH_SIGNING_KEY = "auth-signing-key.pem"  # never leaves the operator's machine (git-ignored)


def write_auth_files(overlay: str, force: bool = False) -> list[tuple[pathlib.Path, bool]]:
    """The overlay's token signing key (0600, kept unless ``force``) and ``auth.env`` with its
    JWKS, which the manifests mount into Envoy."""
    directory = OVERLAYS_DIR / overlay
    if not directory.is_dir():
        raise ConfigError(f"no overlay {overlay!r} under {OVERLAYS_DIR}")
    key = directory / AUTH_SIGNING_KEY
    created = force or not key.exists()
    if force:
        key.unlink(missing_ok=True)
    auth.create_signing_key(key)
    env = directory / AUTH_ENV_FILE
    fd = os.open(env, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"JWKS={json.dumps(auth.jwks(key), separators=(',', ':'))}\n")
    return [(key, created), (env, True)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if generated files are stale")
    parser.add_argument("--overlay", action="append", help="limit to an overlay (repeatable)")
    sub = parser.add_subparsers(dest="command")
    sec = sub.add_parser(
        "secrets",
        help="write random secrets to overlays/<env>/{redis,events,features}.env (kept if present)",
    )
    sec.add_argument("--overlay", action="append", dest="secret_overlays", required=True)
    sec.add_argument("--force", action="store_true", help="replace an existing password")
    keys = sub.add_parser(
        "auth-keys",
        help="write the overlay's token signing key (kept if present) and auth.env (its JWKS)",
    )
    keys.add_argument("--overlay", action="append", dest="key_overlays", required=True)
    keys.add_argument("--force", action="store_true", help="replace the signing key")
    tok = sub.add_parser("token", help="issue a JWT signed by the overlay's key (stdout)")
    tok.add_argument("--overlay", dest="token_overlay", required=True)
    tok.add_argument("--subject", required=True, help="the client's id (its rate-limit key)")
    tok.add_argument("--scope", action="append", required=True, choices=auth.SCOPES)
    tok.add_argument("--user", action="append", required=True, help="a user id, or '*'")
    tok.add_argument("--days", type=float, default=30.0, help="lifetime")
    args = parser.parse_args(argv)
    try:
        if args.command in ("secrets", "auth-keys"):
            write, names = (
                (write_secret_env, args.secret_overlays)
                if args.command == "secrets"
                else (write_auth_files, args.key_overlays)
            )
            for name in names:
                for path, created in write(name, force=args.force):
                    state = "written" if created else "kept (exists; --force to replace)"
                    print(f"{path.relative_to(KUSTOMIZE_DIR)}: {state}")
            return 0
        if args.command == "token":
            key = OVERLAYS_DIR / args.token_overlay / AUTH_SIGNING_KEY
            print(auth.issue_token(key, args.subject, args.scope, args.user, args.days * 86400))
            return 0
        overlays = args.overlay or overlay_names()
        if args.check:
            stale = stale_files(overlays)
            for path in stale:
                print(f"stale: {path.relative_to(KUSTOMIZE_DIR)}", file=sys.stderr)
            if stale:
                print("run: python kustomize/generate.py", file=sys.stderr)
                return 1
            print(f"generated files up to date ({', '.join(overlays)})")
            return 0
        written = write_generated(overlays)
        for path in written:
            print(f"wrote {path.relative_to(KUSTOMIZE_DIR)}")
        print(f"{len(written)} files for {len(overlays)} overlays ({', '.join(overlays)})")
        return 0
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
