"""The front door's security filters: who may call what, per-client rate limits, TLS.

Filter order on the front listener (docs/security.md):

1. the global local rate limit (`serving.envoy.config`), a backstop that sheds load before
   any token is checked;
2. ``jwt_authn``: every route but the public ones needs a token signed by a key of the local
   JWKS (401 without one, or with an expired or forged one); the verified payload goes to
   the gateways in `serving.auth.PAYLOAD_HEADER` and its subject in `CLIENT_HEADER`, both
   overwriting whatever the client sent under those names;
3. RBAC: each route is allowed to tokens with its scope (403 otherwise);
4. a per-client local rate limit keyed by the token's subject, so one client flooding uses
   up its own bucket only.
"""

from __future__ import annotations

from typing import Any

from serving import auth
from serving.settings import AuthSettings, RateLimitSettings, TlsSettings

Node = dict[str, Any]

JWT_FILTER = "envoy.filters.http.jwt_authn"
PROVIDER = "aiqleads"
PAYLOAD_METADATA = "jwt_payload"
CLIENT_DESCRIPTOR = "client"
RATE_LIMITED_HEADER = "x-aiqleads-rate-limited"
RATE_LIMIT_KIND_HEADER = "x-aiqleads-rate-limit"  # global or client
OPENAPI_PATH = "/openapi.json"
METRICS_PATH = "/stats/prometheus"
READY_PATH = "/ready"
ADMIN_CLUSTER = "envoy_admin"
_ALWAYS = {"default_value": {"numerator": 100, "denominator": "HUNDRED"}}


def _path(exact: str | None = None, prefix: str | None = None) -> Node:
    return {"url_path": {"path": {"exact": exact} if exact is not None else {"prefix": prefix}}}


def _scope(scope: str) -> Node:
    return {
        "metadata": {
            "filter": JWT_FILTER,
            "path": [{"key": PAYLOAD_METADATA}, {"key": auth.SCOPE_CLAIM}],
            "value": {"list_match": {"one_of": {"string_match": {"exact": scope}}}},
        }
    }


def jwt_filter(settings: AuthSettings, public_paths: tuple[str, ...]) -> Node:
    """``jwt_authn``: a token is required everywhere but ``public_paths``."""
    if settings.jwks_file is None:
        raise ValueError(
            "auth.jwks_file is not set: `aiqleads serve` writes one; the manifests mount it"
        )
    return {
        "name": JWT_FILTER,
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
            "providers": {
                PROVIDER: {
                    "issuer": auth.ISSUER,
                    "audiences": [auth.AUDIENCE],
                    "local_jwks": {"filename": str(settings.jwks_file)},
                    "forward": False,  # the token itself goes no further than Envoy
                    "forward_payload_header": auth.PAYLOAD_HEADER,
                    "claim_to_headers": [{"header_name": auth.CLIENT_HEADER, "claim_name": "sub"}],
                    "payload_in_metadata": PAYLOAD_METADATA,
                    "normalize_payload_in_metadata": {"space_delimited_claims": [auth.SCOPE_CLAIM]},
                    "clock_skew_seconds": settings.clock_skew_seconds,
                    # A token seen before skips its signature check (expiry is still checked).
                    **(
                        {"jwt_cache_config": {"jwt_cache_size": settings.verified_token_cache}}
                        if settings.verified_token_cache
                        else {}
                    ),
                }
            },
            "rules": [
                *({"match": {"path": path}} for path in public_paths),
                {"match": {"prefix": "/"}, "requires": {"provider_name": PROVIDER}},
            ],
        },
    }


def rbac_filter(
    scoped: dict[str, list[Node]], public_paths: tuple[str, ...], unrouted: list[Node]
) -> Node:
    """RBAC: ``scoped`` maps a scope to the path matchers it opens; public paths are open to
    anyone, and paths no route serves pass to the router (which answers 404)."""
    policies: dict[str, Node] = {
        "public": {
            "permissions": [_path(exact=p) for p in public_paths],
            "principals": [{"any": True}],
        },
        # Authenticated callers of a path no route serves get the router's 404, not a 403.
        "unrouted": {
            "permissions": [{"not_rule": {"or_rules": {"rules": unrouted}}}],
            "principals": [{"any": True}],
        },
    }
    for scope, paths in scoped.items():
        policies[scope] = {"permissions": paths, "principals": [_scope(scope)]}
    return {
        "name": "envoy.filters.http.rbac",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
            "rules": {"action": "ALLOW", "policies": policies},
        },
    }


def path_matchers(exact: tuple[str, ...] = (), prefix: tuple[str, ...] = ()) -> list[Node]:
    return [_path(exact=p) for p in exact] + [_path(prefix=p) for p in prefix]


def _bucket(limit: RateLimitSettings) -> Node:
    return {
        "max_tokens": limit.burst,
        "tokens_per_fill": limit.requests_per_second,
        "fill_interval": "1s",
    }


def _limited_headers(kind: str) -> list[Node]:
    return [
        {
            "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
            "header": {"key": RATE_LIMITED_HEADER, "value": "true"},
        },
        {
            "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
            "header": {"key": RATE_LIMIT_KIND_HEADER, "value": kind},
        },
    ]


def _local_rate_limit(stat_prefix: str, kind: str, bucket: RateLimitSettings, **more: Any) -> Node:
    """Envoy's local rate limit filter, always on and enforced: ``bucket`` for every request
    (``more`` adds descriptors with buckets of their own); a limited request gets 429 (gRPC
    RESOURCE_EXHAUSTED) with headers that say it was rate limited and by which ``kind``."""
    return {
        "name": "envoy.filters.http.local_ratelimit",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
            "stat_prefix": stat_prefix,
            "token_bucket": _bucket(bucket),
            "filter_enabled": {"runtime_key": f"{stat_prefix}_enabled", **_ALWAYS},
            "filter_enforced": {"runtime_key": f"{stat_prefix}_enforced", **_ALWAYS},
            "rate_limited_as_resource_exhausted": True,
            "response_headers_to_add": _limited_headers(kind),
            **more,
        },
    }


def rate_limit_filter(limit: RateLimitSettings) -> Node:
    """The global token bucket of the front listener (shared by Envoy's workers)."""
    return _local_rate_limit("front_rate_limit", "global", limit)


def client_rate_limit_filter(settings: AuthSettings, backstop: RateLimitSettings) -> Node:
    """One token bucket per client (the verified token's subject), up to ``max_clients``
    buckets; a request without a subject (a public path) falls to ``backstop``."""
    client_header = {"header_name": auth.CLIENT_HEADER, "descriptor_key": CLIENT_DESCRIPTOR}
    return _local_rate_limit(
        "client_rate_limit",
        "client",
        backstop,
        # An entry without a value matches every value, each with a bucket of its own.
        descriptors=[
            {
                "entries": [{"key": CLIENT_DESCRIPTOR}],
                "token_bucket": _bucket(settings.client_rate_limit),
            }
        ],
        max_dynamic_descriptors=settings.max_clients,
        rate_limits=[{"actions": [{"request_headers": client_header}]}],
    )


def local_reply_config() -> Node:
    """Envoy's own errors (401, 403, 404, 429, 503) as ``{"error": ...}`` JSON, as the
    gateways answer (its direct answers, such as /ping, stay as they are); gRPC callers get
    the matching status (UNAUTHENTICATED, PERMISSION_DENIED, ...) instead."""
    errors = {
        "status_code_filter": {
            "comparison": {
                "op": "GE",
                "value": {"default_value": 400, "runtime_key": "local_reply_json_from"},
            }
        }
    }
    return {
        "mappers": [
            {
                "filter": errors,
                "body_format_override": {
                    "json_format": {
                        "error": "%LOCAL_REPLY_BODY%",
                        "status": "%RESPONSE_CODE%",
                        "details": "%RESPONSE_CODE_DETAILS%",
                    },
                    "content_type": "application/json",
                },
            }
        ]
    }


def tls_transport_socket(tls: TlsSettings) -> Node:
    """TLS 1.2+ on the front listener, offering HTTP/2 (gRPC) and HTTP/1.1."""
    return {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
            "common_tls_context": {
                "tls_params": {"tls_minimum_protocol_version": "TLSv1_2"},
                "alpn_protocols": ["h2", "http/1.1"],
                "tls_certificates": [
                    {
                        "certificate_chain": {"filename": str(tls.cert_file)},
                        "private_key": {"filename": str(tls.key_file)},
                    }
                ],
            },
        },
    }


def metrics_routes() -> list[Node]:
    """The metrics listener: the loopback admin's Prometheus stats and readiness (GET only:
    nothing that changes Envoy is reachable from it)."""
    get = [{"name": ":method", "string_match": {"exact": "GET"}}]
    return [
        *(
            {
                "match": {"path": path, "headers": get},
                "route": {"cluster": ADMIN_CLUSTER, "timeout": "5s"},
            }
            for path in (METRICS_PATH, READY_PATH)
        ),
        {"match": {"prefix": "/"}, "direct_response": {"status": 404}},
    ]


def admin_cluster(admin_host: str, admin_port: int) -> Node:
    return {
        "name": ADMIN_CLUSTER,
        "type": "STATIC",
        "connect_timeout": "0.250s",
        "load_assignment": {
            "cluster_name": ADMIN_CLUSTER,
            "endpoints": [
                {
                    "lb_endpoints": [
                        {
                            "endpoint": {
                                "address": {
                                    "socket_address": {
                                        "address": admin_host,
                                        "port_value": admin_port,
                                    }
                                }
                            }
                        }
                    ]
                }
            ],
        },
    }
