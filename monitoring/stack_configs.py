"""The configs of a local stack's Prometheus and Alertmanager, written for its `Topology`.

`write` is the `serving.launcher.MonitoringWriter` that ``aiqleads serve`` hands the launcher:
the serving layer starts the processes, this layer says what they watch and whom they call.
"""

from __future__ import annotations

import pathlib

import yaml

from monitoring import alertmanager, prometheus, rules
from serving.launcher import MonitoringFiles, Topology

CONFIG_DIR = "monitoring"
PROMETHEUS_FILE = "prometheus.yml"
ALERTMANAGER_FILE = "alertmanager.yml"


def write(topology: Topology) -> MonitoringFiles:
    """prometheus.yml, the rules and alertmanager.yml under ``<run_dir>/monitoring/``."""
    s = topology.settings
    directory = pathlib.Path(s.run_dir) / CONFIG_DIR
    directory.mkdir(parents=True, exist_ok=True)
    rules_path = directory / prometheus.RULES_FILE
    rules_path.write_text(rules.render(s.alerts))
    am = f"{s.alertmanager.host}:{s.alertmanager.port}"
    prom_path = directory / PROMETHEUS_FILE
    prom_path.write_text(
        yaml.safe_dump(prometheus.local_config(topology, [str(rules_path)], am), sort_keys=False)
    )
    am_path = directory / ALERTMANAGER_FILE
    trigger_url = f"http://{s.trigger.host}:{s.trigger.port}"
    am_path.write_text(
        yaml.safe_dump(alertmanager.config(s.alertmanager, trigger_url), sort_keys=False)
    )
    return MonitoringFiles(prometheus_config=prom_path, alertmanager_config=am_path)
