"""The kustomize overlays build, validate against Kubernetes 1.30, and say what they promise.

Every overlay is built with the real `kubectl kustomize` from a copy of `kustomize/` with
throwaway secrets (the real ones are never committed; tests/kustomize/manifests.py), then
checked with
`kubernetes-validate --strict`, `envoy --mode validate` and TF Serving's config protos.
"""

from __future__ import annotations

import json
import pathlib
import re
import shutil
import subprocess
import sys

import yaml
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from serving.settings import load_settings
from tests.kustomize.manifests import (
    EVENT_STORE_PASSWORD_FILE,
    EVENT_STORE_URL,
    KUBERNETES_VERSION,
    KUSTOMIZE,
    NAMESPACES,
    ONLINE_STORE_PASSWORD_FILE,
    ONLINE_STORE_URL,
    OVERLAYS,
    REDIS_AUTH_CONFIG,
    REDIS_PASSWORD_FILE,
    REPO,
    TEST_PASSWORD,
    generated_args,
    load_objects,
    mounted_secret_file,
    one,
    pod_specs,
    tool,
)


def test_generated_files_are_up_to_date():
    result = subprocess.run(
        [sys.executable, str(KUSTOMIZE / "generate.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


def test_check_fails_when_settings_change(tmp_path):
    tree = tmp_path / "kustomize"
    shutil.copytree(KUSTOMIZE, tree, ignore=shutil.ignore_patterns("*.env", "__pycache__"))
    settings = tree / "overlays" / "prod" / "serving.yaml"
    settings.write_text(settings.read_text().replace("grpc_port: 8500", "grpc_port: 8600"))
    result = subprocess.run(
        [sys.executable, str(tree / "generate.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "stale: overlays/prod/generated/envoy.yaml" in result.stderr
    assert "stale: overlays/prod/generated/workloads.yaml" in result.stderr
    assert "overlays/dev" not in result.stderr


def test_every_object_validates_strictly_for_kubernetes_1_30(built):
    validate = tool("kubernetes-validate")
    for overlay, path in built.items():
        result = subprocess.run(
            [validate, "--strict", "--no-warn", "-k", KUBERNETES_VERSION, str(path)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, f"{overlay}: {result.stdout}{result.stderr}"
        passed = result.stdout.count(" passed for resource ")
        assert passed == len(load_objects(path)), result.stdout


def _mounted_files(tmp_path: pathlib.Path) -> dict[str, pathlib.Path]:
    """Stand-ins for the Secrets Envoy's pod mounts: a JWKS and a self-signed certificate."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from serving import auth

    jwks = auth.write_jwks(tmp_path / "jwks.json", auth.create_signing_key(tmp_path / "k.pem"))
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "aiqleads.test")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(1)
        .not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    crt, pem = tmp_path / "tls.crt", tmp_path / "tls.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return {
        "/etc/aiqleads/auth/jwks.json": jwks,
        "/etc/aiqleads/tls/tls.crt": crt,
        "/etc/aiqleads/tls/tls.key": pem,
    }


def test_envoy_config_in_configmap_validates_with_kubernetes_addresses(built, tmp_path):
    envoy = tool("envoy")
    for overlay, path in built.items():
        config_map = one(load_objects(path), "ConfigMap", "aiqleads-envoy")
        config_file = tmp_path / f"{overlay}-envoy.yaml"
        # Envoy reads the files the pod mounts (the JWKS, prod's certificate): test copies.
        text = config_map["data"]["envoy.yaml"]
        for mounted, local in _mounted_files(tmp_path).items():
            text = text.replace(mounted, str(local))
        config_file.write_text(text)
        result = subprocess.run(
            [envoy, "--mode", "validate", "-c", str(config_file)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr + result.stdout
        config = yaml.safe_load(config_map["data"]["envoy.yaml"])
        hosts = {
            lb["endpoint"]["address"]["socket_address"]["address"]
            for cluster in config["static_resources"]["clusters"]
            if cluster["name"] != "envoy_admin"  # the metrics listener's loopback admin
            for group in cluster["load_assignment"]["endpoints"]
            for lb in group["lb_endpoints"]
        }
        ns = NAMESPACES[overlay]
        assert hosts == {
            f"aiqleads-gateway.{ns}.svc.cluster.local",
            f"aiqleads-model-server.{ns}.svc.cluster.local",
        }
        backends = [c for c in config["static_resources"]["clusters"] if c["name"] != "envoy_admin"]
        assert {c["type"] for c in backends} == {"STRICT_DNS"}


def test_model_config_parses_and_points_at_the_model_volume(built):
    for overlay, path in built.items():
        objects = load_objects(path)
        settings = load_settings(KUSTOMIZE / "overlays" / overlay / "serving.yaml")
        config_map = one(objects, "ConfigMap", "aiqleads-tf-serving")
        config = text_format.Parse(
            config_map["data"]["models.config"], model_server_config_pb2.ModelServerConfig()
        )
        (model,) = config.model_config_list.config
        assert model.name == settings.model_name == "lead_recommender"
        assert model.base_path == "/models/lead_recommender"
        assert model.model_platform == "tensorflow"
        pod = one(objects, "Deployment", "aiqleads-model-server")["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["image"] == "tensorflow/serving:2.16.1"
        mounts = {m["name"]: m for m in container["volumeMounts"]}
        assert mounts["models"]["mountPath"] == "/models" and mounts["models"]["readOnly"]
        claims = {v["name"]: v.get("persistentVolumeClaim") for v in pod["volumes"]}
        assert claims["models"]["claimName"] == "aiqleads-models"
        assert container["readinessProbe"]["httpGet"]["path"] == f"/v1/models/{model.name}"
        config_mount = mounts["tf-serving-config"]["mountPath"]
        assert f"--model_config_file={config_mount}/models.config" in container["args"]
        # The deployment's labels change in place (no name hash, no rollout), and the
        # gateways read the canary's share from the same ConfigMap.
        assert config_map["metadata"]["name"] == "aiqleads-tf-serving"
        assert set(config_map["data"]) == {"models.config", "canary.json", "monitoring.config"}
        gateway = one(objects, "Deployment", "aiqleads-gateway")["spec"]["template"]["spec"]
        (gw,) = gateway["containers"]
        gw_mounts = {m["name"]: m["mountPath"] for m in gw["volumeMounts"]}
        assert gw_mounts["tf-serving-config"] == config_mount
        assert f"--canary-fraction-file={config_mount}/canary.json" in gw["args"]
        assert f"--port={settings.model_servers.grpc_port}" in container["args"]
        assert f"--rest_api_port={settings.model_servers.rest_port}" in container["args"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports == {
            "grpc": settings.model_servers.grpc_port,
            "rest": settings.model_servers.rest_port,
        }


def test_replicas_follow_settings_and_prod_spreads_across_nodes(built):
    for overlay, path in built.items():
        objects = load_objects(path)
        settings = load_settings(KUSTOMIZE / "overlays" / overlay / "serving.yaml")
        for name, want in (
            ("aiqleads-model-server", settings.model_servers.replicas),
            ("aiqleads-gateway", settings.gateways.replicas),
        ):
            deployment = one(objects, "Deployment", name)
            assert deployment["spec"]["replicas"] == want
            assert one(objects, "HorizontalPodAutoscaler", name)["spec"]["minReplicas"] == want
            spread = deployment["spec"]["template"]["spec"].get("topologySpreadConstraints", [])
            hard = [
                c
                for c in spread
                if c["topologyKey"] == "kubernetes.io/hostname"
                and c["whenUnsatisfiable"] == "DoNotSchedule"
                and c["labelSelector"]["matchLabels"] == {"app.kubernetes.io/name": name}
            ]
            if overlay == "prod":
                assert want >= 3
                assert len(hard) == 1
                pdb = one(objects, "PodDisruptionBudget", name)["spec"]
                assert pdb == {"minAvailable": 2, "selector": pdb["selector"]}
            else:
                assert want == 1 and not hard
    for name in ("aiqleads-model-server", "aiqleads-gateway", "aiqleads-envoy", "aiqleads-redis"):
        kind = "StatefulSet" if name == "aiqleads-redis" else "Deployment"
        assert one(load_objects(built["dev"]), kind, name)["spec"]["replicas"] == 1


def test_only_envoy_front_port_is_reachable_from_outside_the_namespace(built):
    for path in built.values():
        objects = load_objects(path)
        policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
        deny = [
            p for p in policies if p["spec"]["podSelector"] == {} and "ingress" not in p["spec"]
        ]
        assert deny, "a default-deny ingress policy selects every pod"
        for policy in policies:
            for rule in policy["spec"].get("ingress", []):
                peers = rule.get("from")
                same_namespace = peers and all(set(p) == {"podSelector"} for p in peers)
                if same_namespace:
                    continue
                # Anything else admits traffic from outside: only Envoy's front port.
                assert policy["spec"]["podSelector"] == {
                    "matchLabels": {"app.kubernetes.io/name": "aiqleads-envoy"}
                }, policy["metadata"]["name"]
                assert rule["ports"] == [{"port": "front", "protocol": "TCP"}]
        exposed = [
            o for o in objects if o["kind"] == "Service" and o["spec"].get("type") == "LoadBalancer"
        ]
        for service in exposed:
            assert service["metadata"]["name"] == "aiqleads-envoy"
            assert [p["name"] for p in service["spec"]["ports"]] == ["front"]


def test_every_container_is_hardened_bounded_and_probed(built):
    for overlay, path in built.items():
        specs = pod_specs(load_objects(path))
        assert {"aiqleads-online-store", "aiqleads-feature-updater"} <= {n for n, _ in specs}
        for name, pod in specs:
            where = f"{overlay}/{name}"
            assert pod["securityContext"]["runAsNonRoot"] is True, where
            assert pod["automountServiceAccountToken"] is False, where
            for container in pod["containers"]:
                sc = container["securityContext"]
                assert sc["capabilities"]["drop"] == ["ALL"], where
                assert sc["allowPrivilegeEscalation"] is False, where
                assert sc["readOnlyRootFilesystem"] is True, where
                assert set(container["resources"]) == {"requests", "limits"}, where
                for key in ("cpu", "memory"):
                    assert key in container["resources"]["requests"], where
                    assert key in container["resources"]["limits"], where
                if "restartPolicy" not in pod:  # servers; a job's pod runs to completion
                    assert "readinessProbe" in container and "livenessProbe" in container, where
                assert ":" in container["image"] and not container["image"].endswith(":latest")


def test_gateway_runs_the_project_image_and_reads_the_password_from_the_secret(built):
    objects = load_objects(built["prod"])
    secret = one(objects, "Secret", "aiqleads-redis")
    events = one(objects, "Secret", "aiqleads-events")
    features = one(objects, "Secret", "aiqleads-features")
    pod = one(objects, "Deployment", "aiqleads-gateway")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == ["python", "-m", "serving.gateway"]
    assert container["image"] == "registry.example.com/aiqleads/recommendations:0.1.0"
    # The URLs hold no password; the gateway reads each from a file of the mounted Secret.
    assert "--redis-url=redis://aiqleads-redis:6379/0" in container["args"]
    assert f"--redis-password-file={REDIS_PASSWORD_FILE}" in container["args"]
    assert f"--event-store-password-file={EVENT_STORE_PASSWORD_FILE}" in container["args"]
    assert mounted_secret_file(pod, container, REDIS_PASSWORD_FILE) == (
        secret["metadata"]["name"],
        "REDIS_PASSWORD",
    )
    assert mounted_secret_file(pod, container, EVENT_STORE_PASSWORD_FILE) == (
        events["metadata"]["name"],
        "EVENT_STORE_PASSWORD",
    )
    assert f"--online-store-password-file={ONLINE_STORE_PASSWORD_FILE}" in container["args"]
    assert mounted_secret_file(pod, container, ONLINE_STORE_PASSWORD_FILE) == (
        features["metadata"]["name"],
        "ONLINE_STORE_PASSWORD",
    )
    assert pod["securityContext"]["fsGroup"] == pod["securityContext"]["runAsGroup"]
    assert not {"REDIS_PASSWORD", "EVENT_STORE_PASSWORD", "ONLINE_STORE_PASSWORD"} & {
        e["name"] for e in container["env"]
    }
    updater = one(objects, "Deployment", "aiqleads-feature-updater")["spec"]["template"]["spec"]
    (u_container,) = updater["containers"]
    assert updater["securityContext"]["fsGroup"] == updater["securityContext"]["runAsGroup"]
    for path, store_secret, key in (
        (EVENT_STORE_PASSWORD_FILE, events, "EVENT_STORE_PASSWORD"),
        (ONLINE_STORE_PASSWORD_FILE, features, "ONLINE_STORE_PASSWORD"),
    ):
        assert mounted_secret_file(updater, u_container, path) == (
            store_secret["metadata"]["name"],
            key,
        )
    assert "env" not in u_container or not any("PASSWORD" in e["name"] for e in u_container["env"])
    monitor = one(objects, "Deployment", "aiqleads-monitor")["spec"]["template"]["spec"]
    (m_container,) = monitor["containers"]
    assert f"--event-store-password-file={EVENT_STORE_PASSWORD_FILE}" in m_container["args"]
    assert mounted_secret_file(monitor, m_container, EVENT_STORE_PASSWORD_FILE) == (
        events["metadata"]["name"],
        "EVENT_STORE_PASSWORD",
    )
    # Each Redis reads requirepass from a file its initContainer renders from the Secret.
    for name, store_secret, key in (
        ("aiqleads-redis", secret, "REDIS_PASSWORD"),
        ("aiqleads-event-store", events, "EVENT_STORE_PASSWORD"),
        ("aiqleads-online-store", features, "ONLINE_STORE_PASSWORD"),
    ):
        redis = one(objects, "StatefulSet", name)["spec"]["template"]["spec"]
        args = redis["containers"][0]["args"]
        assert args[0] == REDIS_AUTH_CONFIG and "--requirepass" not in args
        (init,) = redis["initContainers"]
        ref = {e["name"]: e for e in init["env"]}[key]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": store_secret["metadata"]["name"], "key": key}
        assert f'"${key}" > {REDIS_AUTH_CONFIG}' in init["command"][-1]
        volumes = {v["name"]: v for v in redis["volumes"]}
        for c in (init, redis["containers"][0]):
            (mount,) = [m for m in c["volumeMounts"] if m["mountPath"] == "/run/redis-auth"]
            assert volumes[mount["name"]]["emptyDir"]["medium"] == "Memory"


def test_gateway_arguments_are_accepted_by_the_gateway(built):
    from serving.gateway.__main__ import main as gateway_main
    from serving.gateway.config import parse_config

    for overlay, path in built.items():
        settings = load_settings(KUSTOMIZE / "overlays" / overlay / "serving.yaml")
        pod = one(load_objects(path), "Deployment", "aiqleads-gateway")["spec"]["template"]["spec"]
        args = pod["containers"][0]["args"]
        params = dict(gateway_main.make_context("gateway", args).params)
        params["model_servers"] = tuple(params["model_servers"])
        assert params.pop("event_loop") == settings.gateways.event_loop  # chosen before config
        config = parse_config(params)
        assert config.host == "0.0.0.0"
        assert (config.rest_port, config.grpc_port) == (
            settings.gateways.rest_port,
            settings.gateways.grpc_port,
        )
        assert config.model_servers == (
            f"aiqleads-envoy-internal:{settings.envoy.model_listener_port}",
        )
        assert config.redis_url == "redis://aiqleads-redis:6379/0"
        assert config.redis_password_file == pathlib.Path(REDIS_PASSWORD_FILE)
        assert config.event_store_password_file == pathlib.Path(EVENT_STORE_PASSWORD_FILE)
        assert config.online_store_url == ONLINE_STORE_URL
        assert config.online_store_password_file == pathlib.Path(ONLINE_STORE_PASSWORD_FILE)
        assert config.cache_ttl_seconds == settings.gateways.cache_ttl_seconds
        assert (config.local_cache_entries, config.local_cache_ttl_seconds) == (
            settings.gateways.local_cache_entries,
            settings.gateways.local_cache_ttl_seconds,
        )
        ports = {p["name"]: p["containerPort"] for p in pod["containers"][0]["ports"]}
        assert ports == {"rest": config.rest_port, "grpc": config.grpc_port}


def test_workload_args_come_from_the_launchers_command_line_builders():
    from serving import command_lines

    for overlay in OVERLAYS:
        s = load_settings(KUSTOMIZE / "overlays" / overlay / "serving.yaml")
        args = generated_args(overlay)
        assert args["gateway"] == command_lines.gateway_args(
            s,
            host="0.0.0.0",
            rest_port=8000,
            grpc_port=8001,
            redis_url="redis://aiqleads-redis:6379/0",
            model_server="aiqleads-envoy-internal:8081",
            event_store_url=EVENT_STORE_URL,
            online_store_url=ONLINE_STORE_URL,
            redis_password_file=REDIS_PASSWORD_FILE,
            event_store_password_file=EVENT_STORE_PASSWORD_FILE,
            online_store_password_file=ONLINE_STORE_PASSWORD_FILE,
            canary_fraction_file="/etc/aiqleads/tf-serving/canary.json",
            drain_seconds=command_lines.gateway_drain_seconds(s),
        )
        assert args["event-store"] == command_lines.event_store_args(
            s.event_store, directory="/data", config_file=REDIS_AUTH_CONFIG
        )
        assert args["online-store"] == command_lines.feature_store_args(
            s.feature_store, directory="/data", config_file=REDIS_AUTH_CONFIG
        )
        assert args["feature-updater"] == command_lines.feature_updater_args(
            host="0.0.0.0",
            port=9103,
            online_store_url=ONLINE_STORE_URL,
            event_store_url=EVENT_STORE_URL,
            data_dir="/data/default",
            online_store_password_file=ONLINE_STORE_PASSWORD_FILE,
            event_store_password_file=EVENT_STORE_PASSWORD_FILE,
        )
        assert args["monitor"] == command_lines.monitor_args(
            s,
            host="0.0.0.0",
            port=9102,
            event_store_url=EVENT_STORE_URL,
            event_store_password_file=EVENT_STORE_PASSWORD_FILE,
        )
        assert args["tf-serving"] == command_lines.model_server_args(
            s,
            8500,
            8501,
            "/etc/aiqleads/tf-serving/monitoring.config",
            model_config=command_lines.ModelConfigFile(
                "/etc/aiqleads/tf-serving/models.config", 60
            ),
        )
        assert args["redis"] == command_lines.redis_args(s.redis, config_file=REDIS_AUTH_CONFIG)
        assert args["envoy"] == command_lines.envoy_args("/etc/envoy/envoy.yaml", 2, "info")
        assert "--model-timeout-ms=500" in args["gateway"]


def test_envoy_accepts_its_generated_arguments(tmp_path):
    envoy = tool("envoy")
    for overlay in OVERLAYS:
        config = tmp_path / f"{overlay}-envoy.yaml"
        generated = KUSTOMIZE / "overlays" / overlay / "generated" / "envoy.yaml"
        text = generated.read_text()
        for mounted, local in _mounted_files(tmp_path).items():  # the pod's mounted Secrets
            text = text.replace(mounted, str(local))
        config.write_text(text)
        args = [
            str(config) if a == "/etc/envoy/envoy.yaml" else a
            for a in generated_args(overlay)["envoy"]
        ]
        result = subprocess.run(
            [envoy, "--mode", "validate", "--disable-hot-restart", *args],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr + result.stdout


def test_daily_retraining_job_uses_the_overlay_configs_and_the_pipeline_image(built):
    from pipeline.config import load_config
    from pipeline.kfp_client import load_kfp_settings

    for overlay, path in built.items():
        objects = load_objects(path)
        job = one(objects, "CronJob", "aiqleads-retraining")
        config_map = one(objects, "ConfigMap", "aiqleads-retraining")
        files = KUSTOMIZE / "overlays" / overlay / "retraining"
        kfp = load_kfp_settings(files / "kfp.yaml", environ={})
        pipeline = load_config(files / "pipeline.yaml", environ={})
        assert config_map["data"]["kfp.yaml"] == (files / "kfp.yaml").read_text()
        assert job["spec"]["concurrencyPolicy"] == "Forbid"  # at most one retraining at once
        # Same daily time as the KFP recurring run (KFP's cron has a leading seconds field).
        assert kfp.schedule_cron.split()[1:] == job["spec"]["schedule"].split()
        pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["image"] == kfp.image  # the steps run the image that compiled them
        script = container["args"][0]
        assert "aiqleads pipeline compile" in script and "--reason schedule" in script
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert str(pipeline.data_path).startswith("/data/") and "/data" in mounts


def test_no_secret_literal_is_committed(built):
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split("\0")
    assert not [f for f in tracked if f.endswith(("redis.env", "events.env", "features.env"))]
    literal = re.compile(
        r"(REDIS_PASSWORD|EVENT_STORE_PASSWORD|ONLINE_STORE_PASSWORD|requirepass)"
        r"\s*[=:]\s*['\"]?[A-Za-z0-9+/_-]{8,}"
    )
    for name in tracked:
        path = REPO / name
        if not name or not path.is_file() or path.suffix not in {".yaml", ".yml", ".env", ".md"}:
            continue
        text = path.read_text(errors="ignore")
        assert not literal.search(text), f"secret-like literal in {name}"
        assert TEST_PASSWORD not in text
    # The rendered Secret holds the password the overlay read from its (ignored) env file.
    for env_file in ("redis.env", "events.env", "features.env"):
        ignored = subprocess.run(
            ["git", "check-ignore", f"kustomize/overlays/prod/{env_file}"],
            cwd=REPO,
            capture_output=True,
        )
        assert ignored.returncode == 0, f"{env_file} must be git-ignored"


def test_secrets_command_writes_private_random_secrets_once(tmp_path):
    tree = tmp_path / "kustomize"
    shutil.copytree(KUSTOMIZE, tree, ignore=shutil.ignore_patterns("*.env", "__pycache__"))
    cmd = [sys.executable, str(tree / "generate.py"), "secrets", "--overlay", "dev"]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0 and first.stdout.count("written") == 3
    redis_env = tree / "overlays" / "dev" / "redis.env"
    events_env = tree / "overlays" / "dev" / "events.env"
    features_env = tree / "overlays" / "dev" / "features.env"
    content = redis_env.read_text()
    assert re.fullmatch(r"REDIS_PASSWORD=[0-9a-f]{64}\n", content)
    assert re.fullmatch(
        r"EVENT_STORE_PASSWORD=[0-9a-f]{64}\nAIQLEADS_ATTRIBUTION_KEY=[0-9a-f]{64}\n",
        events_env.read_text(),
    )
    assert re.fullmatch(r"ONLINE_STORE_PASSWORD=[0-9a-f]{64}\n", features_env.read_text())
    for env_file in (redis_env, events_env, features_env):
        assert env_file.stat().st_mode & 0o077 == 0, env_file.name
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert second.stdout.count("kept") == 3 and redis_env.read_text() == content
    # An older overlay with only the Redis password gets the missing keys, and keeps its own.
    events_env.unlink()
    features_env.unlink()
    third = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert "events.env: written" in third.stdout and redis_env.read_text() == content
    assert "features.env: written" in third.stdout
    bad = subprocess.run([*cmd[:-1], "staging"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "no overlay 'staging'" in bad.stderr


def test_event_log_workloads_persist_share_one_key_and_ingest_before_retraining(built):
    from aiqleads.events.attribution import KEY_ENV
    from pipeline.config import load_config

    for overlay, path in built.items():
        objects = load_objects(path)
        store = one(objects, "StatefulSet", "aiqleads-event-store")
        (claim,) = store["spec"]["volumeClaimTemplates"]
        (container,) = store["spec"]["template"]["spec"]["containers"]
        assert {m["name"]: m["mountPath"] for m in container["volumeMounts"]} == {
            claim["metadata"]["name"]: "/data",
            "auth-config": REDIS_AUTH_CONFIG.rpartition("/")[0],  # requirepass, from the Secret
        }
        args = container["args"]
        assert args[args.index("--appendonly") + 1] == "yes"
        assert args[args.index("--maxmemory-policy") + 1] == "noeviction"
        gateway = one(objects, "Deployment", "aiqleads-gateway")
        env = {e["name"]: e for e in gateway["spec"]["template"]["spec"]["containers"][0]["env"]}
        events_secret = one(objects, "Secret", env[KEY_ENV]["valueFrom"]["secretKeyRef"]["name"])
        assert env[KEY_ENV]["valueFrom"]["secretKeyRef"]["key"] in events_secret["data"]
        monitor = one(objects, "Deployment", "aiqleads-monitor")
        assert monitor["spec"]["replicas"] == 1
        ingest = one(objects, "CronJob", "aiqleads-events-ingest")
        retrain = one(objects, "CronJob", "aiqleads-retraining")
        minute, hour = (int(x) for x in ingest["spec"]["schedule"].split()[:2])
        r_minute, r_hour = (int(x) for x in retrain["spec"]["schedule"].split()[:2])
        assert hour * 60 + minute < r_hour * 60 + r_minute  # ingestion first
        (job,) = ingest["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
        data = job["command"][job["command"].index("--data") + 1]
        files = KUSTOMIZE / "overlays" / overlay / "retraining"
        assert pathlib.Path(data) == load_config(files / "pipeline.yaml", environ={}).data_path
        assert not any("PASSWORD)" in a for a in job["command"])  # the URL comes from env


def test_monitoring_stack_scrapes_alerts_and_routes_to_the_trigger(built, tmp_path):
    """Prometheus' config and rules pass promtool, Alertmanager's routing passes amtool and
    sends retraining alerts to the trigger's Service, and every tier is scraped."""
    from monitoring import dashboards, prometheus, rules
    from serving import command_lines

    promtool, amtool = tool("promtool"), tool("amtool")
    for overlay, path in built.items():
        objects = load_objects(path)
        settings = load_settings(KUSTOMIZE / "overlays" / overlay / "serving.yaml")
        ns = NAMESPACES[overlay]
        prom = one(objects, "ConfigMap", "aiqleads-prometheus")["data"]
        work = tmp_path / overlay
        work.mkdir()
        (work / "aiqleads.rules.yml").write_text(prom["aiqleads.rules.yml"])
        config = prom["prometheus.yml"].replace("/etc/prometheus/", f"{work}/")
        (work / "prometheus.yml").write_text(config)
        checked = subprocess.run(
            [promtool, "check", "config", str(work / "prometheus.yml")],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert set(rules.alert_names()) <= set(prom["aiqleads.rules.yml"].split())  # all alerts
        jobs = {j["job_name"]: j for j in yaml.safe_load(config)["scrape_configs"]}
        assert set(jobs) >= {
            *prometheus.SERVING_JOBS,
            prometheus.JOB_MONITOR,
            prometheus.JOB_TRIGGER,
        }
        (gateway_dns,) = jobs[prometheus.JOB_GATEWAY]["dns_sd_configs"]
        assert gateway_dns["names"] == [f"aiqleads-gateway.{ns}.svc.cluster.local"]
        assert gateway_dns["port"] == settings.gateways.rest_port
        services = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Service"}
        for job in jobs.values():  # every DNS name is a headless Service of the namespace
            for sd in job.get("dns_sd_configs", []):
                name = sd["names"][0].split(".")[0]
                assert services[name]["spec"]["clusterIP"] == "None", name
        # The feature updater, as the monitor: one pod through its Service, on /metrics.
        (updater,) = jobs["aiqleads-feature-updater"]["static_configs"]
        updater_port = services["aiqleads-feature-updater"]["spec"]["ports"][0]["port"]
        assert updater["targets"] == [f"aiqleads-feature-updater:{updater_port}"]
        assert updater_port == settings.feature_store.updater_port
        assert jobs["aiqleads-feature-updater"]["metrics_path"] == "/metrics"
        am = one(objects, "ConfigMap", "aiqleads-alertmanager")["data"]["alertmanager.yml"]
        (work / "alertmanager.yml").write_text(am)
        checked = subprocess.run(
            [amtool, "check-config", str(work / "alertmanager.yml")],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
        routing = yaml.safe_load(am)
        (route,) = routing["route"]["routes"]
        assert route["matchers"] == ['action="retrain"']
        receiver = next(r for r in routing["receivers"] if r["name"] == route["receiver"])
        trigger_service = services["aiqleads-trigger"]
        (port,) = trigger_service["spec"]["ports"]
        assert (
            receiver["webhook_configs"][0]["url"]
            == f"http://aiqleads-trigger:{port['port']}/alerts"
        )
        trigger = one(objects, "Deployment", "aiqleads-trigger")["spec"]["template"]["spec"]
        (container,) = trigger["containers"]
        assert container["args"] == command_lines.trigger_args(
            settings,
            host="0.0.0.0",
            port=settings.trigger.port,
            state_dir="/var/lib/aiqleads-trigger",
        )
        assert "--runner=kfp" in container["args"]
        assert {p["containerPort"] for p in container["ports"]} == {settings.trigger.port}
        # Grafana: the datasource is our Prometheus, the dashboards are monitoring's.
        datasources = yaml.safe_load(
            one(objects, "ConfigMap", "aiqleads-grafana-datasources")["data"]["datasources.yaml"]
        )
        (source,) = datasources["datasources"]
        assert source["url"] == f"http://aiqleads-prometheus:{settings.prometheus.port}"
        boards = one(objects, "ConfigMap", "aiqleads-grafana-dashboards")["data"]
        for dashboard in dashboards.DASHBOARDS:
            board = json.loads(boards[f"{dashboard.uid}.json"])
            exprs = [t["expr"] for p in board["panels"] for t in p["targets"]]
            assert exprs == [q.expr for p in dashboard.panels for q in p.queries]
            assert {t["datasource"]["uid"] for p in board["panels"] for t in p["targets"]} == {
                source["uid"]
            }
        grafana = one(objects, "Deployment", "aiqleads-grafana")["spec"]["template"]["spec"]
        assert grafana["containers"][0]["image"].startswith("grafana/grafana:")
        monitor = one(objects, "Deployment", "aiqleads-monitor")["spec"]["template"]["spec"]
        mounts = {m["mountPath"]: m for m in monitor["containers"][0]["volumeMounts"]}
        assert mounts["/models"]["readOnly"]  # each version's published training statistics
