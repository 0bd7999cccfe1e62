"""The online feature store and its streaming updater in the overlays: a persistent,
never-evicting Redis of its own; the updater on the project image and the data volume; the
arguments its own parser accepts; who may reach the store; and the settings Kubernetes needs.
"""

from __future__ import annotations

import importlib.util
import pathlib
import sys
from types import ModuleType

import pytest
import yaml

from aiqleads.errors import ConfigError
from serving.settings import ServingSettings, load_settings
from tests.kustomize.manifests import (
    EVENT_STORE_PASSWORD_FILE,
    EVENT_STORE_URL,
    KUSTOMIZE,
    NAMESPACES,
    ONLINE_STORE_PASSWORD_FILE,
    ONLINE_STORE_URL,
    OVERLAYS,
    load_objects,
    one,
)

STORE = "aiqleads-online-store"
UPDATER = "aiqleads-feature-updater"
NAME_LABEL = "app.kubernetes.io/name"


def _settings(overlay: str) -> ServingSettings:
    return load_settings(KUSTOMIZE / "overlays" / overlay / "serving.yaml")


def _generate() -> ModuleType:
    """kustomize/generate.py as a module (it is a script, not a package)."""
    name = "kustomize_generate"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, KUSTOMIZE / "generate.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def _with_feature_store(settings: ServingSettings, **changes: object) -> ServingSettings:
    store = settings.feature_store.model_copy(update=changes)
    return settings.model_copy(update={"feature_store": store})


def test_online_store_persists_never_evicts_and_is_bounded_by_the_settings(built):
    # The memory bound of each overlay's serving.yaml, by hand: dev 512 MB, prod 2048 MB.
    for overlay, max_memory in (("dev", "512mb"), ("prod", "2048mb")):
        objects = load_objects(built[overlay])
        settings = _settings(overlay)
        store = one(objects, "StatefulSet", STORE)
        assert store["spec"]["replicas"] == 1
        (claim,) = store["spec"]["volumeClaimTemplates"]
        pod = store["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["image"] == "redis:7.2.5" and container["command"] == ["redis-server"]
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert mounts == {claim["metadata"]["name"]: "/data", "auth-config": "/run/redis-auth"}
        args = container["args"]
        assert args[args.index("--dir") + 1] == "/data"  # the append-only file on the claim
        assert args[args.index("--appendonly") + 1] == "yes"
        assert args[args.index("--maxmemory-policy") + 1] == "noeviction"
        assert args[args.index("--maxmemory") + 1] == max_memory
        # Room for the append-only file's rewrite (a fork) above the bound.
        limit = container["resources"]["limits"]["memory"]
        assert limit.endswith("Gi") and int(limit[:-2]) * 1024 >= 2 * int(max_memory[:-2])
        # One port, the settings', from the container to the headless Service.
        (port,) = container["ports"]
        assert port["containerPort"] == settings.feature_store.port == 6379
        assert args[args.index("--port") + 1] == str(port["containerPort"])
        service = one(objects, "Service", STORE)["spec"]
        assert service["clusterIP"] == "None"
        assert service["selector"] == {NAME_LABEL: STORE}
        assert service["ports"] == [
            {"name": "redis", "port": 6379, "targetPort": "redis", "protocol": "TCP"}
        ]


def test_feature_updater_runs_the_project_image_on_the_data_volume(built):
    from pipeline.config import load_config

    for overlay, path in built.items():
        objects = load_objects(path)
        settings = _settings(overlay)
        updater = one(objects, "Deployment", UPDATER)
        # One consumer of the event log's "features" group at a time, also during rollouts.
        assert updater["spec"]["replicas"] == 1
        assert updater["spec"]["strategy"] == {"type": "Recreate"}
        pod = updater["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["command"] == ["python", "-m", "serving.feature_store"]
        gateway = one(objects, "Deployment", "aiqleads-gateway")["spec"]["template"]["spec"]
        assert container["image"] == gateway["containers"][0]["image"]  # the project image
        # The data set it materializes is the one ingestion writes and retraining reads.
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        assert mounts["/data"]["readOnly"] is True
        volumes = {v["name"]: v for v in pod["volumes"]}
        claim = volumes[mounts["/data"]["name"]]["persistentVolumeClaim"]
        assert claim == {"claimName": "aiqleads-data", "readOnly": True}
        data_dir = container["args"][container["args"].index("--data-dir=/data/default")]
        pipeline = load_config(
            KUSTOMIZE / "overlays" / overlay / "retraining" / "pipeline.yaml", environ={}
        )
        assert data_dir == f"--data-dir={pipeline.data_path}"
        ingest = one(objects, "CronJob", "aiqleads-events-ingest")
        (job,) = ingest["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
        assert job["command"][job["command"].index("--data") + 1] == str(pipeline.data_path)
        # /metrics: the probes, the port of the settings, Prometheus' annotations.
        (port,) = container["ports"]
        assert port == {
            "name": "metrics",
            "containerPort": settings.feature_store.updater_port,
            "protocol": "TCP",
        }
        assert f"--port={port['containerPort']}" in container["args"]
        for probe in ("readinessProbe", "livenessProbe"):
            assert container[probe]["httpGet"] == {"path": "/metrics", "port": "metrics"}
        annotations = updater["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == str(port["containerPort"])
        service = one(objects, "Service", UPDATER)["spec"]
        assert service["selector"] == {NAME_LABEL: UPDATER}
        assert [(p["port"], p["targetPort"]) for p in service["ports"]] == [
            (settings.feature_store.updater_port, "metrics")
        ]


def test_updater_arguments_are_accepted_by_the_updater(built):
    from serving.feature_store.__main__ import main as updater_main
    from serving.feature_store.config import parse_config

    for path in built.values():
        pod = one(load_objects(path), "Deployment", UPDATER)["spec"]["template"]["spec"]
        args = pod["containers"][0]["args"]
        config = parse_config(updater_main.make_context("feature-updater", args).params)
        assert (config.host, config.port) == ("0.0.0.0", 9103)
        assert config.online_store_url == ONLINE_STORE_URL  # no password in the URL
        assert config.event_store_url == EVENT_STORE_URL
        assert config.online_store_password_file == pathlib.Path(ONLINE_STORE_PASSWORD_FILE)
        assert config.event_store_password_file == pathlib.Path(EVENT_STORE_PASSWORD_FILE)
        assert config.data_dir == pathlib.Path("/data/default")


def _matches(selector: dict, labels: dict[str, str]) -> bool:
    """A Kubernetes label selector (matchLabels and matchExpressions) against pod labels."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for e in selector.get("matchExpressions", []):
        value, op = labels.get(e["key"]), e["operator"]
        if op == "In" and value not in e["values"]:
            return False
        if op == "NotIn" and value in e.get("values", []):
            return False
        if op == "Exists" and e["key"] not in labels:
            return False
        if op == "DoesNotExist" and e["key"] in labels:
            return False
    return True


def _admits(policies: list[dict], source: dict[str, str] | None, target: dict, port: str) -> bool:
    """Whether the namespace's ingress policies let ``source`` (a pod's labels, or None for a
    client outside the namespace) reach the named ``port`` of the ``target`` pod."""
    number = {p["name"]: p["containerPort"] for c in target["containers"] for p in c["ports"]}
    labels = target["labels"]
    selecting = [p for p in policies if _matches(p["spec"]["podSelector"], labels)]
    if not selecting:
        return True
    for policy in selecting:
        for rule in policy["spec"].get("ingress", []):
            ports = rule.get("ports")
            if ports is not None and not any(p["port"] in (port, number[port]) for p in ports):
                continue
            peers = rule.get("from")
            if peers is None:
                return True
            for peer in peers:
                if set(peer) != {"podSelector"}:
                    return True  # namespace or IP peers: counted as admitting (conservative)
                if source is not None and _matches(peer["podSelector"], source):
                    return True
    return False


def _pods(objects: list[dict]) -> dict[str, dict]:
    """Workload name -> its pod template's labels and containers."""
    pods = {}
    for o in objects:
        if o["kind"] in ("Deployment", "StatefulSet"):
            template = o["spec"]["template"]
        elif o["kind"] == "CronJob":
            template = o["spec"]["jobTemplate"]["spec"]["template"]
        else:
            continue
        pods[o["metadata"]["name"]] = {
            "labels": template["metadata"]["labels"],
            "containers": template["spec"]["containers"],
        }
    return pods


def test_network_policies_let_only_the_gateways_and_the_updater_reach_the_online_store(built):
    for overlay, path in built.items():
        objects = load_objects(path)
        policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
        pods = _pods(objects)
        assert {STORE, UPDATER, "aiqleads-gateway", "aiqleads-prometheus"} <= set(pods)
        store = pods[STORE]
        reach_store = {n for n, p in pods.items() if _admits(policies, p["labels"], store, "redis")}
        assert reach_store == {"aiqleads-gateway", UPDATER}, overlay
        assert not _admits(policies, None, store, "redis")  # nothing outside the namespace
        # The updater reads the event log; Prometheus scrapes the updater.
        updater = pods[UPDATER]["labels"]
        assert _admits(policies, updater, pods["aiqleads-event-store"], "redis")
        prometheus = pods["aiqleads-prometheus"]["labels"]
        assert _admits(policies, prometheus, pods[UPDATER], "metrics")
        # What held before still holds: the namespace's pods reach each other, the outside
        # only Envoy's front port.
        gateway = pods["aiqleads-gateway"]["labels"]
        assert _admits(policies, gateway, pods["aiqleads-event-store"], "redis")
        assert _admits(policies, None, pods["aiqleads-envoy"], "front")
        assert not _admits(policies, None, pods["aiqleads-event-store"], "redis")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"port": 0}, "need fixed ports; set feature_store.port"),
        ({"updater_port": 0}, "need fixed ports; set feature_store.updater_port"),
        ({"host": "127.0.0.1"}, "feature_store.host must be the service aiqleads-online-store"),
        ({"updater_host": "127.0.0.1"}, "feature_store.updater_host must be 0.0.0.0 in a pod"),
        (
            {"data_dir": pathlib.Path("/srv/spans")},
            r"feature_store.data_dir must live on the data volume \(/data/...\), got /srv/spans",
        ),
    ],
)
def test_kubernetes_needs_the_feature_stores_fixed_ports_service_and_data_volume(
    changes, message
) -> None:
    generate = _generate()
    settings = _settings("prod")
    generate.check_kubernetes_settings(settings)  # the committed settings pass
    with pytest.raises(ConfigError, match=message):
        generate.check_kubernetes_settings(_with_feature_store(settings, **changes))


def test_without_data_dir_the_updater_streams_only() -> None:
    generate = _generate()
    settings = _with_feature_store(_settings("prod"), data_dir=None)
    generate.check_kubernetes_settings(settings)
    (container,) = _patches(settings)["Deployment", UPDATER]["spec"]["template"]["spec"][
        "containers"
    ]
    assert not [a for a in container["args"] if a.startswith("--data-dir")]


def test_a_disabled_feature_store_scales_to_zero_and_the_gateways_do_without_it() -> None:
    generate = _generate()
    for overlay in OVERLAYS:
        settings = _settings(overlay)
        on = _patches(settings)
        off_settings = _with_feature_store(settings, enabled=False)
        off = _patches(off_settings)
        for patches, replicas in ((on, 1), (off, 0)):
            assert patches["StatefulSet", STORE]["spec"]["replicas"] == replicas
            assert patches["Deployment", UPDATER]["spec"]["replicas"] == replicas

        def gateway_args(patches: dict) -> list[str]:
            spec = patches["Deployment", "aiqleads-gateway"]["spec"]["template"]["spec"]
            return spec["containers"][0]["args"]

        assert f"--online-store-url={ONLINE_STORE_URL}" in gateway_args(on)
        assert not [a for a in gateway_args(off) if a.startswith("--online-store")]
        # Nothing else of the gateways changes.
        assert [a for a in gateway_args(on) if not a.startswith("--online-store")] == (
            gateway_args(off)
        )
        directory = KUSTOMIZE / "overlays" / overlay
        namespace = NAMESPACES[overlay]
        jobs = {
            name: _scrape_jobs(
                generate.monitoring_files(generate.Overlay(overlay, directory, s, namespace))
            )
            for name, s in (("on", settings), ("off", off_settings))
        }
        assert set(jobs["on"]) - set(jobs["off"]) == {UPDATER}
        assert jobs["on"].index(UPDATER) == jobs["on"].index("aiqleads-monitor") + 1


def _patches(settings: ServingSettings) -> dict[tuple[str, str], dict]:
    """(kind, name) -> the workload patch generate.py writes for these settings."""
    return {(p["kind"], p["metadata"]["name"]): p for p in _generate().workload_patches(settings)}


def _scrape_jobs(files: dict[str, str]) -> list[str]:
    return [j["job_name"] for j in yaml.safe_load(files["prometheus.yml"])["scrape_configs"]]
