"""Prometheus' configuration, from the serving settings: scrape jobs, rules, Alertmanager.

One job per kind of process, named the same locally and in Kubernetes, so that the rules and
the dashboards hold in both:

- locally (`local_config`), static loopback targets from the launcher's resolved `Topology`;
- in Kubernetes (`kubernetes_config`), the pods of each replicated tier through the DNS of
  its headless Service, single pods through their Service.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from serving.launcher import Topology
from serving.model_server.config import PROMETHEUS_PATH
from serving.settings import ServingSettings

JOB_GATEWAY = "aiqleads-gateway"
JOB_MODEL_SERVER = "aiqleads-model-server"
JOB_ENVOY = "aiqleads-envoy"
JOB_MONITOR = "aiqleads-monitor"
JOB_FEATURE_UPDATER = "aiqleads-feature-updater"
JOB_TRIGGER = "aiqleads-trigger"
JOB_ALERTMANAGER = "aiqleads-alertmanager"
JOB_PROMETHEUS = "aiqleads-prometheus"
SERVING_JOBS = (JOB_GATEWAY, JOB_MODEL_SERVER, JOB_ENVOY)
ENVOY_METRICS_PATH = "/stats/prometheus"
METRICS_PATH = "/metrics"
RULES_FILE = "aiqleads.rules.yml"
# Kubernetes Services (kustomize/base) the jobs find their pods through.
K8S_GATEWAY_SERVICE = "aiqleads-gateway"  # headless
K8S_MODEL_SERVER_SERVICE = "aiqleads-model-server"  # headless
K8S_ENVOY_PODS_SERVICE = "aiqleads-envoy-pods"  # headless, admin port only
K8S_MONITOR_SERVICE = "aiqleads-monitor"
K8S_FEATURE_UPDATER_SERVICE = "aiqleads-feature-updater"
K8S_TRIGGER_SERVICE = "aiqleads-trigger"


@dataclasses.dataclass(frozen=True)
class ScrapeJob:
    name: str
    metrics_path: str
    targets: tuple[str, ...]  # host:port


def local_jobs(topology: Topology) -> list[ScrapeJob]:
    """Every process of a local stack, by job."""
    s = topology.settings
    return [
        ScrapeJob(
            JOB_GATEWAY, METRICS_PATH, tuple(f"{r.host}:{r.rest_port}" for r in topology.gateways)
        ),
        ScrapeJob(
            JOB_MODEL_SERVER,
            PROMETHEUS_PATH,
            tuple(f"{r.host}:{r.rest_port}" for r in topology.model_servers),
        ),
        ScrapeJob(JOB_ENVOY, ENVOY_METRICS_PATH, (f"{s.envoy.host}:{_envoy_metrics_port(s)}",)),
        ScrapeJob(JOB_MONITOR, METRICS_PATH, (f"{s.monitor.host}:{s.monitor.port}",)),
        *(
            [
                ScrapeJob(
                    JOB_FEATURE_UPDATER,
                    METRICS_PATH,
                    (f"{s.feature_store.updater_host}:{s.feature_store.updater_port}",),
                )
            ]
            if s.feature_store.enabled
            else []
        ),
        ScrapeJob(JOB_TRIGGER, METRICS_PATH, (f"{s.trigger.host}:{s.trigger.port}",)),
        ScrapeJob(
            JOB_ALERTMANAGER, METRICS_PATH, (f"{s.alertmanager.host}:{s.alertmanager.port}",)
        ),
        ScrapeJob(JOB_PROMETHEUS, METRICS_PATH, (f"{s.prometheus.host}:{s.prometheus.port}",)),
    ]


def _envoy_metrics_port(settings: ServingSettings) -> int:
    """Envoy's read-only metrics listener (the admin interface stays on loopback); a
    deployment without one is scraped on the admin port."""
    return settings.envoy.metrics_port or settings.envoy.admin_port


def _global(settings: ServingSettings) -> dict[str, Any]:
    p = settings.prometheus
    return {
        "scrape_interval": _duration(p.scrape_interval_seconds),
        "scrape_timeout": _duration(min(p.scrape_interval_seconds, 10.0)),
        "evaluation_interval": _duration(p.evaluation_interval_seconds),
    }


def local_config(
    topology: Topology, rule_files: list[str], alertmanager: str | None
) -> dict[str, Any]:
    """prometheus.yml of a local stack: static targets on loopback."""
    config: dict[str, Any] = {
        "global": _global(topology.settings),
        "rule_files": rule_files,
        "scrape_configs": [
            {
                "job_name": job.name,
                "metrics_path": job.metrics_path,
                "static_configs": [{"targets": list(job.targets)}],
            }
            for job in local_jobs(topology)
            if job.targets
        ],
    }
    if alertmanager:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
    return config


def kubernetes_config(
    settings: ServingSettings, namespace: str, rule_files: list[str], alertmanager: str
) -> dict[str, Any]:
    """prometheus.yml for a Prometheus inside the namespace.

    Replicated tiers are found through the DNS of their headless Services (one A record per
    ready pod), so Prometheus needs no Kubernetes API token; single pods through their
    Service."""
    s = settings

    def dns(job: str, service: str, port: int, path: str) -> dict[str, Any]:
        return {
            "job_name": job,
            "metrics_path": path,
            "dns_sd_configs": [
                {"names": [f"{service}.{namespace}.svc.cluster.local"], "type": "A", "port": port}
            ],
        }

    def static(job: str, target: str, path: str = METRICS_PATH) -> dict[str, Any]:
        return {"job_name": job, "metrics_path": path, "static_configs": [{"targets": [target]}]}

    return {
        "global": _global(settings),
        "rule_files": rule_files,
        "scrape_configs": [
            dns(JOB_GATEWAY, K8S_GATEWAY_SERVICE, s.gateways.rest_port, METRICS_PATH),
            dns(
                JOB_MODEL_SERVER,
                K8S_MODEL_SERVER_SERVICE,
                s.model_servers.rest_port,
                PROMETHEUS_PATH,
            ),
            dns(JOB_ENVOY, K8S_ENVOY_PODS_SERVICE, _envoy_metrics_port(s), ENVOY_METRICS_PATH),
            static(JOB_MONITOR, f"{K8S_MONITOR_SERVICE}:{s.monitor.port}"),
            *(
                [
                    static(
                        JOB_FEATURE_UPDATER,
                        f"{K8S_FEATURE_UPDATER_SERVICE}:{s.feature_store.updater_port}",
                    )
                ]
                if s.feature_store.enabled
                else []
            ),
            static(JOB_TRIGGER, f"{K8S_TRIGGER_SERVICE}:{s.trigger.port}"),
            static(JOB_ALERTMANAGER, alertmanager),
            static(JOB_PROMETHEUS, f"localhost:{s.prometheus.port}"),
        ],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]},
    }


def _duration(seconds: float) -> str:
    """A Prometheus duration: whole seconds as ``Ns``, else milliseconds."""
    if float(seconds).is_integer():
        return f"{int(seconds)}s"
    return f"{round(seconds * 1000)}ms"


duration = _duration
