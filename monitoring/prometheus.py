"""Prometheus' configuration, from the serving settings: scrape jobs, rules, Alertmanager.

One job per kind of process, named the same locally and in Kubernetes, so that the rules and
the dashboards hold in both:

- locally (`local_config`), static loopback targets from the launcher's resolved `Topology`;
- in Kubernetes (`kubernetes_config`), pod discovery in the namespace, each pod's job taken
  from its ``app.kubernetes.io/name`` label and its port and path from the
  ``prometheus.io/*`` annotations the manifests set.
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
JOB_TRIGGER = "aiqleads-trigger"
JOB_ALERTMANAGER = "aiqleads-alertmanager"
JOB_PROMETHEUS = "aiqleads-prometheus"
SERVING_JOBS = (JOB_GATEWAY, JOB_MODEL_SERVER, JOB_ENVOY)
ENVOY_METRICS_PATH = "/stats/prometheus"
METRICS_PATH = "/metrics"
RULES_FILE = "aiqleads.rules.yml"
# Pods scraped in Kubernetes: their app.kubernetes.io/name is the job.
KUBERNETES_JOBS = (JOB_GATEWAY, JOB_MODEL_SERVER, JOB_ENVOY, JOB_MONITOR, JOB_TRIGGER)


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
        ScrapeJob(JOB_ENVOY, ENVOY_METRICS_PATH, (f"{s.envoy.host}:{s.envoy.admin_port}",)),
        ScrapeJob(JOB_MONITOR, METRICS_PATH, (f"{s.monitor.host}:{s.monitor.port}",)),
        ScrapeJob(JOB_TRIGGER, METRICS_PATH, (f"{s.trigger.host}:{s.trigger.port}",)),
        ScrapeJob(
            JOB_ALERTMANAGER, METRICS_PATH, (f"{s.alertmanager.host}:{s.alertmanager.port}",)
        ),
        ScrapeJob(JOB_PROMETHEUS, METRICS_PATH, (f"{s.prometheus.host}:{s.prometheus.port}",)),
    ]


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
    """prometheus.yml for a Prometheus inside the namespace: pods found by their labels."""
    pods = {
        "job_name": "aiqleads-pods",
        "kubernetes_sd_configs": [{"role": "pod", "namespaces": {"names": [namespace]}}],
        "relabel_configs": [
            {
                "source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"],
                "regex": "true",
                "action": "keep",
            },
            {
                "source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_name"],
                "regex": "|".join(KUBERNETES_JOBS),
                "action": "keep",
            },
            {
                "source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_name"],
                "target_label": "job",
            },
            {
                "source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_path"],
                "regex": "(.+)",
                "target_label": "__metrics_path__",
            },
            {
                "source_labels": [
                    "__address__",
                    "__meta_kubernetes_pod_annotation_prometheus_io_port",
                ],
                "regex": r"([^:]+)(?::\d+)?;(\d+)",
                "replacement": "$1:$2",
                "target_label": "__address__",
            },
            {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
        ],
    }
    return {
        "global": _global(settings),
        "rule_files": rule_files,
        "scrape_configs": [
            pods,
            {"job_name": JOB_PROMETHEUS, "static_configs": [{"targets": ["localhost:9090"]}]},
        ],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]},
    }


def _duration(seconds: float) -> str:
    """A Prometheus duration: whole seconds as ``Ns``, else milliseconds."""
    if float(seconds).is_integer():
        return f"{int(seconds)}s"
    return f"{round(seconds * 1000)}ms"


duration = _duration
