"""Envoy bootstrap config as code, generated from `ServingSettings`.

One function builds the config for local runs (static loopback endpoints) and for
Kubernetes (DNS service names resolved by Envoy, one host per pod behind a headless
service): only the `Upstreams` differ.

Listeners:
- ``front`` (default 127.0.0.1:8080, HTTP/1.1 and HTTP/2 with ``codec_type: AUTO``): the gRPC
  services and the REST API, all routed to the gateways;
- ``model_servers`` (internal): the single address the gateways call; gRPC (TF Serving's
  PredictionService/ModelService) and REST ``/v1/models`` to the model servers;
- ``metrics``: Envoy's ``/stats/prometheus`` (and ``/ready``) from the admin interface,
  which itself binds loopback only.

The front listener's security filters (tokens, scopes, per-client rate limits, TLS) are in
`serving.envoy.security`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import yaml

from serving import auth
from serving.envoy import security
from serving.settings import EnvoySettings, ServingSettings

FRONT_LISTENER = "front"
MODEL_LISTENER = "model_servers"
METRICS_LISTENER = "metrics"
CLUSTER_GATEWAY_REST = "gateway_rest"
CLUSTER_GATEWAY_GRPC = "gateway_grpc"
CLUSTER_MODEL_GRPC = "model_server_grpc"
CLUSTER_MODEL_REST = "model_server_rest"

GRPC_RECOMMENDATIONS = "/aiqleads.recommendations.v1.Recommendations/"
GRPC_PREDICTION = "/tensorflow.serving.PredictionService/"
GRPC_MODEL_SERVICE = "/tensorflow.serving.ModelService/"
REST_RECOMMENDATIONS = "/v1/recommendations"
REST_FEEDBACK = "/v1/feedback"
REST_MODELS = "/v1/models"
PING_PATH = "/ping"  # answered by Envoy itself: liveness and the load generator's baseline
OPENAPI_PATH = security.OPENAPI_PATH  # the REST API's description, from the gateways
PUBLIC_PATHS = (PING_PATH, OPENAPI_PATH)  # no token needed
GRPC_RECOMMEND = "/aiqleads.recommendations.v1.Recommendations/Recommend"
GATEWAY_HEALTH_PATH = "/healthz"
# Retried: what another replica may answer (502/503/504, UNAVAILABLE, a lost connection).
# Never a 500/INTERNAL: a request that broke one gateway breaks the next one the same way.
RETRY_ON = "gateway-error,reset,connect-failure,refused-stream,unavailable"
# Feedback is not idempotent: retry only when the request cannot have reached a gateway.
SAFE_RETRY_ON = "connect-failure,refused-stream,reset-before-request"
GRPC_FEEDBACK = "/aiqleads.recommendations.v1.Recommendations/Feedback"

Discovery = Literal["static", "dns"]
Node = dict[str, Any]  # a mapping of the bootstrap's YAML tree

STDOUT = "/dev/stdout"  # where a pod's Envoy logs go (kubectl logs)
ACCESS_LOG = "envoy-access.log"
HEALTH_LOG = "envoy-health.log"
OUTLIER_LOG = "envoy-outlier.log"
# One JSON object per request: which replica answered, after how many tries, and Envoy's
# response flags (UF upstream connect failure, UH no healthy upstream, URX retry limit, ...).
ACCESS_LOG_FORMAT = {
    "time": "%START_TIME%",
    "method": "%REQ(:METHOD)%",
    "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
    "protocol": "%PROTOCOL%",
    "status": "%RESPONSE_CODE%",
    "grpc_status": "%GRPC_STATUS_NUMBER%",
    "flags": "%RESPONSE_FLAGS%",
    "details": "%RESPONSE_CODE_DETAILS%",
    "cluster": "%UPSTREAM_CLUSTER%",
    "upstream": "%UPSTREAM_HOST%",
    "attempts": "%UPSTREAM_REQUEST_ATTEMPT_COUNT%",
    "failure": "%UPSTREAM_TRANSPORT_FAILURE_REASON%",
    "duration_ms": "%DURATION%",
    "request_id": "%REQ(X-REQUEST-ID)%",
}


@dataclasses.dataclass(frozen=True)
class Replica:
    """One backend address: its gRPC port and the REST port that answers health checks."""

    host: str
    grpc_port: int
    rest_port: int


@dataclasses.dataclass(frozen=True)
class Upstreams:
    """Where the gateways and model servers are: static IPs or DNS names Envoy resolves."""

    gateways: tuple[Replica, ...]
    model_servers: tuple[Replica, ...]
    discovery: Discovery = "static"

    def __post_init__(self) -> None:
        if not self.gateways or not self.model_servers:
            raise ValueError("Upstreams needs at least one gateway and one model server")
        for r in (*self.gateways, *self.model_servers):
            for port in (r.grpc_port, r.rest_port):
                if not 0 < port < 65536:
                    raise ValueError(f"backend {r.host} has an unresolved port {port}")


def kubernetes_upstreams(
    settings: ServingSettings, namespace: str = "aiqleads", domain: str = "svc.cluster.local"
) -> Upstreams:
    """Headless service names of the manifests; ports must be fixed (non-zero) in settings."""
    gw, ms = settings.gateways, settings.model_servers
    return Upstreams(
        gateways=(Replica(f"aiqleads-gateway.{namespace}.{domain}", gw.grpc_port, gw.rest_port),),
        model_servers=(
            Replica(f"aiqleads-model-server.{namespace}.{domain}", ms.grpc_port, ms.rest_port),
        ),
        discovery="dns",
    )


def _seconds(ms: int) -> str:
    return f"{ms / 1000:.3f}s"


def _socket(host: str, port: int) -> Node:
    return {"socket_address": {"address": host, "port_value": port}}


@dataclasses.dataclass(frozen=True)
class LogPaths:
    """Where Envoy writes its access log and its health-check and outlier-ejection events."""

    access: str | None
    health: str
    outlier: str

    @classmethod
    def to_stdout(cls, access_log: bool = True) -> LogPaths:
        return cls(STDOUT if access_log else None, STDOUT, STDOUT)

    @classmethod
    def in_dir(cls, directory: str, access_log: bool = True) -> LogPaths:
        return cls(
            f"{directory}/{ACCESS_LOG}" if access_log else None,
            f"{directory}/{HEALTH_LOG}",
            f"{directory}/{OUTLIER_LOG}",
        )


def _cluster(
    name: str,
    replicas: tuple[Replica, ...],
    use_grpc_port: bool,
    health_path: str,
    env: EnvoySettings,
    discovery: Discovery,
    logs: LogPaths,
) -> Node:
    endpoints = []
    for r in replicas:
        endpoints.append(
            {
                "endpoint": {
                    "address": _socket(r.host, r.grpc_port if use_grpc_port else r.rest_port),
                    # Health checks always go to the REST port (HTTP/1.1 GET).
                    "health_check_config": {"port_value": r.rest_port},
                }
            }
        )
    hc = env.health_check
    cluster: Node = {
        "name": name,
        "type": "STRICT_DNS" if discovery == "dns" else "STATIC",
        "connect_timeout": _seconds(env.connect_timeout_ms),
        "lb_policy": env.lb_policy,
        # Envoy's default merges health changes for 1 s: a second replica turning healthy
        # within that window reaches the workers' load balancers only when it closes,
        # while the admin API (membership_healthy) counts it at once (docs/serving.md).
        "common_lb_config": {"update_merge_window": _seconds(env.update_merge_window_ms)},
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": endpoints}]},
        "health_checks": [
            {
                "timeout": _seconds(hc.timeout_ms),
                "interval": _seconds(hc.interval_ms),
                "no_traffic_interval": _seconds(hc.interval_ms),
                "unhealthy_threshold": hc.unhealthy_threshold,
                "healthy_threshold": hc.healthy_threshold,
                "interval_jitter": "0s",
                "http_health_check": {"path": health_path, "codec_client_type": "HTTP1"},
                "event_logger": [
                    {
                        "name": "envoy.health_check.event_sinks.file",
                        "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.health_check.event_sinks.file.v3.HealthCheckEventFileSink",
                            "event_log_path": logs.health,
                        },
                    }
                ],
            }
        ],
        "outlier_detection": {
            "consecutive_5xx": 5,
            "consecutive_gateway_failure": 3,
            # A replica that refuses a connection (it crashed) leaves the pool at once, so the
            # retry of that very request goes to a live one instead of waiting for two failed
            # health checks; it comes back after the ejection time.
            "split_external_local_origin_errors": True,
            "consecutive_local_origin_failure": 1,
            "enforcing_consecutive_local_origin_failure": 100,
            "interval": "2s",
            "base_ejection_time": "5s",
            "max_ejection_percent": 50,
        },
        "circuit_breakers": {
            "thresholds": [
                {
                    "priority": "DEFAULT",
                    "max_connections": env.max_connections,
                    "max_pending_requests": env.max_pending_requests,
                    "max_requests": env.max_connections,
                    "retry_budget": {
                        "budget_percent": {"value": 25.0},
                        "min_retry_concurrency": 10,
                    },
                }
            ]
        },
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "common_http_protocol_options": {"idle_timeout": "60s"},
                "explicit_http_config": (
                    {"http2_protocol_options": {"max_concurrent_streams": 1024}}
                    if use_grpc_port
                    else {"http_protocol_options": {}}
                ),
            }
        },
    }
    if discovery == "dns":
        cluster["dns_lookup_family"] = "V4_ONLY"
        cluster["dns_refresh_rate"] = "5s"
    return cluster


def _route(match: Node, cluster: str, env: EnvoySettings, retry_on: str = RETRY_ON) -> Node:
    return {
        "match": match,
        "route": {
            "cluster": cluster,
            "timeout": _seconds(env.request_timeout_ms),
            "retry_policy": {
                "retry_on": retry_on,
                "num_retries": env.num_retries,
                "per_try_timeout": _seconds(env.per_try_timeout_ms),
                "retry_host_predicate": [
                    {
                        "name": "envoy.retry_host_predicates.previous_hosts",
                        "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"
                        },
                    }
                ],
                "host_selection_retry_max_attempts": 5,
                "retry_back_off": {"base_interval": "0.005s", "max_interval": "0.050s"},
            },
        },
    }


def _access_log(path: str) -> Node:
    return {
        "name": "envoy.access_loggers.file",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
            "path": path,
            "log_format": {"json_format": ACCESS_LOG_FORMAT},
        },
    }


def _http_manager(
    name: str, routes: list[Node], filters: list[Node], access_log: str | None
) -> Node:
    manager: Node = {
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": name,
            "codec_type": "AUTO",
            "stream_idle_timeout": "30s",
            "request_headers_timeout": "10s",
            "http2_protocol_options": {"max_concurrent_streams": 1024},
            "local_reply_config": security.local_reply_config(),
            "route_config": {
                "name": name,
                "virtual_hosts": [{"name": name, "domains": ["*"], "routes": routes}],
            },
            "http_filters": [
                *filters,
                {
                    "name": "envoy.filters.http.router",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
                    },
                },
            ],
        },
    }
    if access_log:
        manager["typed_config"]["access_log"] = [_access_log(access_log)]
    return manager


def _listener(
    name: str, host: str, port: int, manager: Node, transport_socket: Node | None = None
) -> Node:
    chain: Node = {"filters": [manager]}
    if transport_socket is not None:
        chain["transport_socket"] = transport_socket
    return {"name": name, "address": _socket(host, port), "filter_chains": [chain]}


def _front_filters(settings: ServingSettings) -> list[Node]:
    """The global rate limit, then (with auth on) tokens, scopes and per-client limits."""
    env, auth_settings = settings.envoy, settings.auth
    filters = [security.rate_limit_filter(env.rate_limit)]
    if not auth_settings.enabled:
        return filters
    grpc_feedback, grpc_predict = GRPC_FEEDBACK, GRPC_PREDICTION
    scoped = {
        auth.SCOPE_RECOMMEND: security.path_matchers(exact=(REST_RECOMMENDATIONS, GRPC_RECOMMEND)),
        auth.SCOPE_FEEDBACK: security.path_matchers(exact=(REST_FEEDBACK, grpc_feedback)),
        auth.SCOPE_ADMIN: security.path_matchers(prefix=(REST_MODELS, grpc_predict)),
    }
    routed = security.path_matchers(
        exact=(REST_RECOMMENDATIONS, REST_FEEDBACK),
        prefix=(REST_MODELS, GRPC_RECOMMENDATIONS, grpc_predict),
    )
    return [
        *filters,
        security.jwt_filter(auth_settings, PUBLIC_PATHS),
        security.rbac_filter(scoped, PUBLIC_PATHS, routed),
        security.client_rate_limit_filter(auth_settings, env.rate_limit),
    ]


def build_envoy_config(
    settings: ServingSettings, upstreams: Upstreams, logs: LogPaths | None = None
) -> Node:
    """The Envoy bootstrap (v3 API) as a plain dict; ports in `settings.envoy` must be set.

    ``logs`` defaults to standard output (a pod); local runs write files in their run dir.
    """
    env = settings.envoy
    logs = logs or LogPaths.to_stdout(env.access_log)
    for label, port in (
        ("envoy.port", env.port),
        ("envoy.admin_port", env.admin_port),
        ("envoy.model_listener_port", env.model_listener_port),
        ("envoy.metrics_port", env.metrics_port),
    ):
        if port == 0:
            raise ValueError(f"{label} is 0: resolve free ports before generating the config")
    grpc: Node = {"grpc": {}}
    front_routes = [
        {
            "match": {"path": PING_PATH},
            "direct_response": {"status": 200, "body": {"inline_string": "ok"}},
        },
        _route({"path": GRPC_FEEDBACK, **grpc}, CLUSTER_GATEWAY_GRPC, env, SAFE_RETRY_ON),
        _route({"prefix": GRPC_RECOMMENDATIONS, **grpc}, CLUSTER_GATEWAY_GRPC, env),
        _route({"prefix": GRPC_PREDICTION, **grpc}, CLUSTER_GATEWAY_GRPC, env),
        _route({"path": REST_RECOMMENDATIONS}, CLUSTER_GATEWAY_REST, env),
        _route({"path": REST_FEEDBACK}, CLUSTER_GATEWAY_REST, env, SAFE_RETRY_ON),
        _route({"prefix": REST_MODELS}, CLUSTER_GATEWAY_REST, env),
        _route({"path": OPENAPI_PATH}, CLUSTER_GATEWAY_REST, env),
    ]
    model_routes = [
        _route({"prefix": GRPC_PREDICTION, **grpc}, CLUSTER_MODEL_GRPC, env),
        _route({"prefix": GRPC_MODEL_SERVICE, **grpc}, CLUSTER_MODEL_GRPC, env),
        _route({"prefix": REST_MODELS}, CLUSTER_MODEL_REST, env),
    ]
    model_health = f"{REST_MODELS}/{settings.model_name}"

    def cluster(name: str, replicas: tuple[Replica, ...], grpc_port: bool, health: str) -> Node:
        return _cluster(name, replicas, grpc_port, health, env, upstreams.discovery, logs)

    return {
        "admin": {"address": _socket(env.admin_host, env.admin_port)},
        "cluster_manager": {"outlier_detection": {"event_log_path": logs.outlier}},
        "static_resources": {
            "listeners": [
                _listener(
                    FRONT_LISTENER,
                    env.host,
                    env.port,
                    _http_manager(
                        FRONT_LISTENER, front_routes, _front_filters(settings), logs.access
                    ),
                    security.tls_transport_socket(env.tls) if env.tls is not None else None,
                ),
                _listener(
                    MODEL_LISTENER,
                    env.host,
                    env.model_listener_port,
                    _http_manager(MODEL_LISTENER, model_routes, [], logs.access),
                ),
                _listener(
                    METRICS_LISTENER,
                    env.host,
                    env.metrics_port,
                    _http_manager(METRICS_LISTENER, security.metrics_routes(), [], None),
                ),
            ],
            "clusters": [
                cluster(CLUSTER_GATEWAY_REST, upstreams.gateways, False, GATEWAY_HEALTH_PATH),
                cluster(CLUSTER_GATEWAY_GRPC, upstreams.gateways, True, GATEWAY_HEALTH_PATH),
                cluster(CLUSTER_MODEL_GRPC, upstreams.model_servers, True, model_health),
                cluster(CLUSTER_MODEL_REST, upstreams.model_servers, False, model_health),
                security.admin_cluster(env.admin_host, env.admin_port),
            ],
        },
        "overload_manager": {
            "resource_monitors": [
                {
                    "name": "envoy.resource_monitors.global_downstream_max_connections",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig",
                        "max_active_downstream_connections": env.max_downstream_connections,
                    },
                }
            ]
        },
    }


def render_envoy_config(
    settings: ServingSettings, upstreams: Upstreams, logs: LogPaths | None = None
) -> str:
    """The bootstrap as YAML text, ready for ``envoy -c``."""
    return yaml.safe_dump(build_envoy_config(settings, upstreams, logs), sort_keys=False)
