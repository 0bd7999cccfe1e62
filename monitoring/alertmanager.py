"""Alertmanager's configuration: every alert is kept and shown; those that call for
retraining (``action: retrain``) go to the trigger's webhook, grouped by alert name so that
one burst of alerts makes one notification (and at most one run)."""

from __future__ import annotations

from typing import Any

from monitoring import prometheus as p
from monitoring.rules import ACTION_LABEL, RETRAIN
from serving.settings import AlertmanagerSettings

TRIGGER_RECEIVER = "aiqleads-trigger"
DEFAULT_RECEIVER = "aiqleads-record-only"  # shown in Alertmanager's UI and API, sent nowhere
WEBHOOK_PATH = "/alerts"


def config(settings: AlertmanagerSettings, trigger_url: str) -> dict[str, Any]:
    """alertmanager.yml: the trigger at ``trigger_url`` (``http://host:port``)."""
    timing = {
        "group_wait": p.duration(settings.group_wait_seconds),
        "group_interval": p.duration(settings.group_interval_seconds),
        "repeat_interval": p.duration(settings.repeat_interval_seconds),
    }
    return {
        "route": {
            "receiver": DEFAULT_RECEIVER,
            "group_by": ["alertname"],
            **timing,
            "routes": [
                {
                    "receiver": TRIGGER_RECEIVER,
                    "matchers": [f'{ACTION_LABEL}="{RETRAIN}"'],
                    "group_by": ["alertname"],
                    **timing,
                }
            ],
        },
        "receivers": [
            {"name": DEFAULT_RECEIVER},
            {
                "name": TRIGGER_RECEIVER,
                "webhook_configs": [
                    {
                        "url": trigger_url.rstrip("/") + WEBHOOK_PATH,
                        "send_resolved": False,
                        "max_alerts": 0,
                    }
                ],
            },
        ],
    }
