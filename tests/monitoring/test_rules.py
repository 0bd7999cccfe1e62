"""The rules and the configs Prometheus and Alertmanager run with, checked by their own tools:
`promtool check rules`, `promtool test rules` (the hand-derived cases of
monitoring/rules/aiqleads.rules.test.yml), `promtool check config`, `amtool check-config`."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
import yaml

from monitoring import alertmanager, rules, stack_configs
from serving.launcher import resolve_topology
from serving.settings import AlertSettings, ServingSettings


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (make setup)")
    return path


def _run(*argv: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=cwd)


def test_committed_rules_are_the_defaults_rendering():
    result = _run(sys.executable, "-m", "monitoring.rules", "--check")
    assert result.returncode == 0, result.stderr


def test_rules_pass_promtool_check_and_unit_tests():
    promtool = _tool("promtool")
    checked = _run(promtool, "check", "rules", str(rules.COMMITTED))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = _run(promtool, "test", "rules", "aiqleads.rules.test.yml", cwd=rules.RULES_DIR)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_every_alert_has_a_unit_test():
    cases = yaml.safe_load((rules.RULES_DIR / "aiqleads.rules.test.yml").read_text())
    tested = {t["alertname"] for case in cases["tests"] for t in case.get("alert_rule_test", [])}
    assert set(rules.alert_names()) == tested


def test_settings_change_thresholds_and_holds():
    fast = AlertSettings(drift_for_seconds=5, latency_p95_ms=250, quality_margin=0.3)
    groups = {r.get("alert"): r for g in rules.rule_groups(fast)["groups"] for r in g["rules"]}
    assert groups["AiqleadsServedFeatureDrift"]["for"] == "5s"
    assert groups["AiqleadsLatencyHigh"]["expr"].endswith("> 0.25")
    assert (
        "< 0.7 * aiqleads:online_ctr:window:baseline" in groups["AiqleadsOnlineCtrDropped"]["expr"]
    )
    # Retraining alerts carry what Alertmanager routes on and the trigger records.
    for name in ("AiqleadsServedFeatureDrift", "AiqleadsOnlineCtrDropped"):
        assert groups[name]["labels"][rules.ACTION_LABEL] == rules.RETRAIN
        assert rules.VALUE_ANNOTATION in groups[name]["annotations"]


def test_local_stack_configs_pass_promtool_and_amtool(tmp_path):
    promtool, amtool = _tool("promtool"), _tool("amtool")
    settings = ServingSettings(run_dir=tmp_path)
    topology = resolve_topology(settings)
    files = stack_configs.write(topology)
    checked = _run(promtool, "check", "config", str(files.prometheus_config))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    config = yaml.safe_load(files.prometheus_config.read_text())
    jobs = {j["job_name"]: j["static_configs"][0]["targets"] for j in config["scrape_configs"]}
    s = topology.settings
    assert jobs["aiqleads-gateway"] == [f"127.0.0.1:{r.rest_port}" for r in topology.gateways]
    assert jobs["aiqleads-envoy"] == [f"127.0.0.1:{s.envoy.metrics_port}"]  # not the admin
    assert jobs["aiqleads-trigger"] == [f"127.0.0.1:{s.trigger.port}"]
    am = _run(amtool, "check-config", str(files.alertmanager_config))
    assert am.returncode == 0, am.stdout + am.stderr
    routed = yaml.safe_load(files.alertmanager_config.read_text())
    (route,) = routed["route"]["routes"]
    assert route["receiver"] == alertmanager.TRIGGER_RECEIVER
    (hook,) = next(r for r in routed["receivers"] if r["name"] == route["receiver"])[
        "webhook_configs"
    ]
    assert hook["url"] == f"http://127.0.0.1:{s.trigger.port}/alerts"
