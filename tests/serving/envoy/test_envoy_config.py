"""Generated Envoy configs: accepted by the real `envoy --mode validate`, shaped as designed."""

from __future__ import annotations

import pathlib

import pytest

from aiqleads.errors import ConfigError
from serving import auth
from serving.envoy import config as envoy_config
from serving.envoy import security
from serving.envoy.config import Replica, Upstreams, build_envoy_config, kubernetes_upstreams
from serving.envoy.runtime import validate_config, write_config
from serving.settings import ServingSettings, load_settings

LOCAL = Upstreams(
    gateways=(Replica("127.0.0.1", 7001, 7002), Replica("127.0.0.1", 7003, 7004)),
    model_servers=(Replica("127.0.0.1", 7101, 7102),),
)
JWKS = "/etc/aiqleads/auth/jwks.json"  # where the manifests mount the public keys
PORTS = {
    "envoy.admin_port": 9901,
    "envoy.model_listener_port": 8510,
    "envoy.metrics_port": 9902,
    "auth.jwks_file": JWKS,
}
K8S_PORTS = {
    **PORTS,
    "envoy.host": "0.0.0.0",
    "gateways.rest_port": 8000,
    "gateways.grpc_port": 8001,
    "model_servers.grpc_port": 8500,
    "model_servers.rest_port": 8501,
}


def _clusters(cfg: dict) -> dict[str, dict]:
    return {c["name"]: c for c in cfg["static_resources"]["clusters"]}


def _routes(cfg: dict, listener: str) -> list[dict]:
    (lst,) = [x for x in cfg["static_resources"]["listeners"] if x["name"] == listener]
    hcm = lst["filter_chains"][0]["filters"][0]["typed_config"]
    return hcm["route_config"]["virtual_hosts"][0]["routes"]


def test_local_and_kubernetes_configs_pass_envoy_validate(tmp_path: pathlib.Path) -> None:
    # Envoy reads the JWKS while validating: a real one from a fresh key pair.
    jwks = auth.write_jwks(tmp_path / "jwks.json", auth.create_signing_key(tmp_path / "key.pem"))
    local = ServingSettings().with_overrides(**{**PORTS, "auth.jwks_file": str(jwks)})
    k8s = ServingSettings().with_overrides(**{**K8S_PORTS, "auth.jwks_file": str(jwks)})
    validate_config(write_config(tmp_path / "local.yaml", local, LOCAL))
    validate_config(write_config(tmp_path / "k8s.yaml", k8s, kubernetes_upstreams(k8s)))


def test_envoy_validate_rejects_a_broken_config(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("static_resources: {clusters: [{name: x, type: NOT_A_TYPE}]}\n")
    with pytest.raises(ConfigError, match="Envoy rejects"):
        validate_config(path)


def test_front_routes_map_each_api_to_the_gateway_clusters() -> None:
    cfg = build_envoy_config(ServingSettings().with_overrides(**PORTS), LOCAL)
    front = _routes(cfg, envoy_config.FRONT_LISTENER)
    by_match = {
        (r["match"].get("prefix") or r["match"].get("path")): r.get("route", {}).get("cluster")
        for r in front
    }
    assert by_match == {
        "/ping": None,  # answered by Envoy itself
        "/aiqleads.recommendations.v1.Recommendations/Feedback": "gateway_grpc",
        "/aiqleads.recommendations.v1.Recommendations/": "gateway_grpc",
        "/tensorflow.serving.PredictionService/": "gateway_grpc",
        "/v1/recommendations": "gateway_rest",
        "/v1/feedback": "gateway_rest",
        "/v1/models": "gateway_rest",
        "/openapi.json": "gateway_rest",  # the REST API's description, public
    }
    listener = cfg["static_resources"]["listeners"][0]
    assert listener["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 8080}
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    assert hcm["codec_type"] == "AUTO"
    retries = {r["match"].get("prefix") or r["match"]["path"]: r["route"]["retry_policy"]
               for r in front if "route" in r}  # fmt: skip
    # Feedback is not idempotent: no retry once a gateway may have seen it.
    for path in ("/v1/feedback", "/aiqleads.recommendations.v1.Recommendations/Feedback"):
        assert retries[path]["retry_on"] == "connect-failure,refused-stream,reset-before-request"
    retry = retries["/aiqleads.recommendations.v1.Recommendations/"]
    assert retry["num_retries"] == 2
    assert retry["retry_host_predicate"][0]["name"] == "envoy.retry_host_predicates.previous_hosts"
    # What another gateway may answer is retried (502/503/504 as gateway-error), never a 500:
    # a request that broke one gateway would break the next the same way.
    assert {"gateway-error", "reset", "connect-failure", "unavailable"} <= set(
        retry["retry_on"].split(",")
    )
    assert "5xx" not in retry["retry_on"].split(",")


def test_clusters_health_check_the_rest_port_and_speak_http2_for_grpc() -> None:
    cfg = build_envoy_config(ServingSettings().with_overrides(**PORTS), LOCAL)
    clusters = _clusters(cfg)
    grpc_gw = clusters["gateway_grpc"]
    endpoints = grpc_gw["load_assignment"]["endpoints"][0]["lb_endpoints"]
    # Traffic to the gRPC port, health checks to the REST port of the same replica.
    assert [e["endpoint"]["address"]["socket_address"]["port_value"] for e in endpoints] == [
        7001,
        7003,
    ]
    assert [e["endpoint"]["health_check_config"]["port_value"] for e in endpoints] == [7002, 7004]
    assert grpc_gw["health_checks"][0]["http_health_check"]["path"] == "/healthz"
    options = grpc_gw["typed_extension_protocol_options"]
    assert "http2_protocol_options" in next(iter(options.values()))["explicit_http_config"]
    model = clusters["model_server_grpc"]
    assert model["health_checks"][0]["http_health_check"]["path"] == "/v1/models/lead_recommender"
    assert all(c["type"] == "STATIC" for c in clusters.values())
    # Every backend cluster; the metrics listener's loopback admin is one host, never ejected.
    backends = [c for name, c in clusters.items() if name != security.ADMIN_CLUSTER]
    assert all("outlier_detection" in c for c in backends)


def test_kubernetes_upstreams_resolve_service_names_by_dns() -> None:
    settings = ServingSettings().with_overrides(**K8S_PORTS)
    clusters = _clusters(build_envoy_config(settings, kubernetes_upstreams(settings, "prod")))
    gw = clusters["gateway_rest"]
    assert gw["type"] == "STRICT_DNS"
    address = gw["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
    assert address["socket_address"] == {
        "address": "aiqleads-gateway.prod.svc.cluster.local",
        "port_value": 8000,
    }


def test_unresolved_ports_are_refused() -> None:
    with pytest.raises(ValueError, match="envoy.admin_port is 0"):
        build_envoy_config(ServingSettings(), LOCAL)
    with pytest.raises(ValueError, match="unresolved port 0"):
        kubernetes_upstreams(ServingSettings())


def test_settings_yaml_forbids_unknown_keys_and_bounds_values(tmp_path: pathlib.Path) -> None:
    good = tmp_path / "serving.yaml"
    good.write_text("model_base_path: models\ngateways: {replicas: 3}\nenvoy: {port: 9000}\n")
    settings = load_settings(good)
    assert settings.gateways.replicas == 3
    assert settings.envoy.port == 9000
    assert settings.model_base_path == tmp_path / "models"
    typo = tmp_path / "typo.yaml"
    typo.write_text("gateways: {replicaz: 3}\n")
    with pytest.raises(ConfigError, match=r"gateways\.replicaz: Extra inputs"):
        load_settings(typo)
    bad = tmp_path / "bad.yaml"
    bad.write_text("envoy: {port: 70000, request_timeout_ms: 100, per_try_timeout_ms: 200}\n")
    with pytest.raises(ConfigError, match=r"envoy\.port.*per_try_timeout_ms \(200\) exceeds"):
        load_settings(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "missing.yaml")
