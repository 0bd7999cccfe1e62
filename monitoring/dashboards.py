"""The dashboards as code: every panel's PromQL in one place, rendered as Grafana JSON.

The manifests provision the JSON (and the Prometheus datasource) into the real
``grafana/grafana`` image; ``aiqleads monitor snapshot`` renders the same panels from the
same queries into one static page, and an end-to-end test runs every query against the
local Prometheus under simulated traffic.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from monitoring import rules as r

DATASOURCE_UID = "aiqleads-prometheus"
DATASOURCE_NAME = "Prometheus"
RATE = "1m"  # rate() window of the panels (a few scrapes at the default interval)


@dataclasses.dataclass(frozen=True)
class Query:
    expr: str
    legend: str  # Grafana's legendFormat: {{label}} placeholders


@dataclasses.dataclass(frozen=True)
class Panel:
    title: str
    queries: tuple[Query, ...]
    unit: str = "short"  # Grafana unit: percentunit, s, short, reqps
    description: str = ""


@dataclasses.dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    panels: tuple[Panel, ...]


def _ratio(num: str, den: str, by: str = "model_version, variant") -> str:
    return f"sum by ({by}) (rate({num}[{RATE}])) / sum by ({by}) (rate({den}[{RATE}]))"


QUALITY = Dashboard(
    "aiqleads-quality",
    "AIQLeads: recommendation quality",
    (
        Panel(
            "Online CTR per version and variant",
            (
                Query(
                    _ratio(r.CLICKS, "aiqleads_online_impressions_total"),
                    "v{{model_version}} {{variant}}",
                ),
            ),
            "percentunit",
            "Clicks within the attribution window per answer (the online-quality monitor).",
        ),
        Panel(
            "Online hit rate@k per version and variant",
            (
                Query(
                    _ratio("aiqleads_online_hits_total", "aiqleads_online_impressions_total"),
                    "v{{model_version}} {{variant}}",
                ),
            ),
            "percentunit",
            "Answers with an engagement (click or stronger) per answer.",
        ),
        Panel(
            "Online precision@k per version and variant",
            (
                Query(
                    _ratio(
                        "aiqleads_online_engaged_items_total", "aiqleads_online_shown_items_total"
                    ),
                    "v{{model_version}} {{variant}}",
                ),
            ),
            "percentunit",
            "Engaged (answer, lead) pairs per lead shown.",
        ),
        Panel(
            "Offline NDCG@10 of the served versions",
            (
                Query(
                    'aiqleads_model_offline_metric{metric="ndcg@10"}',
                    "v{{model_version}}",
                ),
            ),
            "short",
            "The Evaluator's overall NDCG@10 of each version in service (published with it).",
        ),
        Panel(
            "Feature drift of served traffic (x its threshold)",
            (Query(r.DRIFT_RATIO, "{{feature}} v{{model_version}}"),),
            "short",
            "TFDV Jensen-Shannon / L-infinity of the last window's served features against "
            "the training statistics of the version that answered, over the pipeline's "
            "threshold: above 1 is drift.",
        ),
        Panel(
            "Model versions in service",
            (
                Query('aiqleads_gateway_model_version{job="aiqleads-gateway"}', "{{variant}}"),
                Query(
                    "aiqleads_model_server_available_versions",
                    "available on {{instance}}",
                ),
            ),
            "short",
            "The version each label (stable, canary) points to, as the gateways see it.",
        ),
        Panel(
            "Retraining runs and why they started",
            (
                Query("aiqleads_trigger_runs_by_reason_total", "{{reason}}"),
                Query("aiqleads_trigger_runs_finished_total", "finished {{outcome}}"),
                Query("aiqleads_trigger_runs_suppressed_total", "suppressed {{why}}"),
            ),
            "short",
            "Runs the retraining trigger started, by reason, and notifications it suppressed.",
        ),
    ),
)

SERVING = Dashboard(
    "aiqleads-serving",
    "AIQLeads: serving health",
    (
        Panel(
            "Latency per hop (p50, p95, p99)",
            tuple(
                Query(r.LATENCY_QUANTILE.format(hop=hop, q=q), f"{hop} p{q}")
                for hop in r.HOPS
                for q in r.QUANTILES
            ),
            "s",
            "Envoy's front listener, the gateways' recommend endpoint, the model servers.",
        ),
        Panel(
            "Cache hits and misses",
            (
                Query(
                    f"sum by (kind) (rate(aiqleads_gateway_cache_hits_total[{RATE}]))",
                    "hits {{kind}}",
                ),
                Query(
                    f"sum by (kind) (rate(aiqleads_gateway_cache_misses_total[{RATE}]))",
                    "misses {{kind}}",
                ),
            ),
            "reqps",
        ),
        Panel(
            "Cache hit rate",
            (Query(r.CACHE_HIT_RATIO, "hit rate"),),
            "percentunit",
        ),
        Panel(
            "Error budget left (99.9% availability, last 3 days)",
            (Query(r.BUDGET_REMAINING, "budget left"),),
            "percentunit",
            "1 - (5xx share at the front door over 3 days) / 0.1%.",
        ),
        Panel(
            "Requests through the front door",
            (
                Query(
                    f"sum by (envoy_response_code_class) (rate({r.FRONT_BY_CLASS}[{RATE}]))",
                    "{{envoy_response_code_class}}xx",
                ),
            ),
            "reqps",
        ),
    ),
)

DASHBOARDS = (QUALITY, SERVING)


def panels() -> list[tuple[Dashboard, Panel]]:
    return [(d, p) for d in DASHBOARDS for p in d.panels]


def grafana_json(dashboard: Dashboard) -> dict[str, Any]:
    """A Grafana dashboard (schema 39) of time-series panels, two per row."""
    datasource = {"type": "prometheus", "uid": DATASOURCE_UID}
    out_panels = []
    for i, panel in enumerate(dashboard.panels):
        out_panels.append(
            {
                "id": i + 1,
                "type": "timeseries",
                "title": panel.title,
                "description": panel.description,
                "datasource": datasource,
                "gridPos": {"h": 8, "w": 12, "x": 12 * (i % 2), "y": 8 * (i // 2)},
                "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
                "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
                "targets": [
                    {
                        "refId": chr(ord("A") + j),
                        "datasource": datasource,
                        "expr": q.expr,
                        "legendFormat": q.legend,
                    }
                    for j, q in enumerate(panel.queries)
                ],
            }
        )
    return {
        "uid": dashboard.uid,
        "title": dashboard.title,
        "tags": ["aiqleads"],
        "timezone": "utc",
        "schemaVersion": 39,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "panels": out_panels,
    }


def render_json(dashboard: Dashboard) -> str:
    return json.dumps(grafana_json(dashboard), indent=2, sort_keys=True) + "\n"


def datasource_provisioning(prometheus_url: str) -> dict[str, Any]:
    """Grafana's datasource provisioning file for our Prometheus."""
    return {
        "apiVersion": 1,
        "datasources": [
            {
                "name": DATASOURCE_NAME,
                "uid": DATASOURCE_UID,
                "type": "prometheus",
                "access": "proxy",
                "url": prometheus_url,
                "isDefault": True,
                "editable": False,
            }
        ],
    }


def dashboard_provisioning(path: str) -> dict[str, Any]:
    """Grafana's dashboard provider: the JSON files under ``path``."""
    return {
        "apiVersion": 1,
        "providers": [
            {
                "name": "aiqleads",
                "folder": "AIQLeads",
                "type": "file",
                "disableDeletion": True,
                "allowUiUpdates": False,
                "options": {"path": path},
            }
        ],
    }
