"""Every Prometheus metric of the gateway, in one registry per gateway instance."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from serving.errors import Code, Reason, ServingError

LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)
# A round trip to a Redis (the online store's lookup): finer below a millisecond.
LOOKUP_BUCKETS = (
    0.0001,
    0.0002,
    0.0003,
    0.0004,
    0.0005,
    0.00075,
    0.001,
    0.0015,
    0.002,
    0.003,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
)
# The recommender's scores are small for most leads (the estimated share of a user's
# engagements, docs/model.md): log-spaced below 0.1, linear above; other models may score
# outside [0, 1].
SCORE_BUCKETS = (
    tuple(i / 10 for i in range(-10, 1))
    + (0.001, 0.003, 0.01, 0.03)
    + tuple(i / 10 for i in range(1, 11))
    + (2.0, 5.0)
)

# The `kind` label of aiqleads_gateway_errors: by reason where the error gives one, else by code.
_KIND_BY_REASON = {
    Reason.BODY_TOO_LARGE: "too_large",
    Reason.NOT_JSON: "media_type",
    Reason.UPSTREAM_REJECTED: "rejected",
}
_KIND_BY_CODE = {
    Code.INVALID_ARGUMENT: "invalid",
    Code.NOT_FOUND: "not_found",
    Code.UNAVAILABLE: "unavailable",
}


def error_kind(error: ServingError) -> str:
    """The `kind` label of a failed request, the same over REST and gRPC."""
    if error.reason is not None:
        return _KIND_BY_REASON[error.reason]
    return _KIND_BY_CODE.get(error.code, error.code.name.lower())


class GatewayMetrics:
    """The gateway's metrics; `render()` gives the Prometheus text exposition."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.latency = Histogram(
            "aiqleads_gateway_request_seconds",
            "Request latency by endpoint and cache status (hit, miss, coalesced, none).",
            ("endpoint", "cache"),
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.requests = Counter(
            "aiqleads_gateway_requests",
            "Requests by endpoint and response code.",
            ("endpoint", "code"),
            registry=r,
        )
        self.errors = Counter(
            "aiqleads_gateway_errors",
            "Failed requests by endpoint and error kind.",
            ("endpoint", "kind"),
            registry=r,
        )
        self.cache_hits = Counter(
            "aiqleads_gateway_cache_hits", "Answers read from Redis.", ("kind",), registry=r
        )
        self.local_cache_hits = Counter(
            "aiqleads_gateway_local_cache_hits",
            "Cache hits answered from the replica's in-process cache (also in cache_hits).",
            ("kind",),
            registry=r,
        )
        self.cache_misses = Counter(
            "aiqleads_gateway_cache_misses",
            "Lookups that went to the model.",
            ("kind",),
            registry=r,
        )
        self.cache_coalesced = Counter(
            "aiqleads_gateway_cache_coalesced",
            "Requests that shared another request's model call (single-flight).",
            ("kind",),
            registry=r,
        )
        self.cache_errors = Counter(
            "aiqleads_gateway_cache_errors",
            "Redis operations that failed or were skipped because the circuit was open.",
            ("operation",),
            registry=r,
        )
        self.redis_up = Gauge(
            "aiqleads_gateway_redis_up", "1 when Redis answers, 0 when it does not.", registry=r
        )
        self.model_calls = Counter(
            "aiqleads_gateway_model_calls",
            "Calls to the model servers by method and outcome.",
            ("method", "outcome"),
            registry=r,
        )
        self.model_call_latency = Histogram(
            "aiqleads_gateway_model_call_seconds",
            "Duration of each successful model server call (through Envoy), by method: with "
            'aiqleads_gateway_request_seconds{cache="miss"} it splits a miss\'s time.',
            ("method",),
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.model_version = Gauge(
            "aiqleads_gateway_model_version",
            "Model version each variant is served by (0 when unknown).",
            ("variant",),
            registry=r,
        )
        self.variant_answers = Counter(
            "aiqleads_gateway_variant_answers",
            "Recommendations by A/B variant and outcome (ok, error): the A/B error guardrail.",
            ("variant", "outcome"),
            registry=r,
        )
        self.variant_latency = Histogram(
            "aiqleads_gateway_variant_seconds",
            "Time the data plane took to answer a recommendation, by A/B variant (the A/B "
            "latency guardrail).",
            ("variant",),
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.online_features = Counter(
            "aiqleads_gateway_online_features",
            "Recommendations by what the online feature store gave the model: found, unknown "
            "(no row: the snapshot's features), stale (older than the view's TTL), store_error "
            "(the snapshot alone), incompatible (the model wants view versions the store does "
            "not hold), snapshot_model (a model without the online signature).",
            ("outcome",),
            registry=r,
        )
        self.online_lookup = Histogram(
            "aiqleads_gateway_online_lookup_seconds",
            "One recommendation's read of the online store (the user's rows and the "
            "availability, one round trip).",
            buckets=LOOKUP_BUCKETS,
            registry=r,
        )
        self.online_reads = Counter(
            "aiqleads_gateway_online_reads",
            "Online feature lookups by where they were answered: memory (the in-process "
            "mirror, no round trip) or store (one round trip to the online store).",
            ("source",),
            registry=r,
        )
        self.unavailable_leads = Gauge(
            "aiqleads_gateway_unavailable_leads",
            "Leads the online store holds unavailable (pending, sold, withdrawn), as last read.",
            registry=r,
        )
        self.scores = Histogram(
            "aiqleads_gateway_score",
            "Scores of the recommended leads, by variant.",
            ("variant",),
            buckets=SCORE_BUCKETS,
            registry=r,
        )
        self.feedback = Counter(
            "aiqleads_gateway_feedback",
            "Feedback events by type and variant.",
            ("event_type", "variant"),
            registry=r,
        )
        self.impressions = Counter(
            "aiqleads_gateway_impressions",
            "Answers for the event log: logged, or dropped (queue full, store down, shutdown).",
            ("outcome",),
            registry=r,
        )
        self.feedback_appends = Counter(
            "aiqleads_gateway_feedback_appends",
            "Feedback writes to the event store: stored, duplicate (id seen), refused (503).",
            ("outcome",),
            registry=r,
        )
        self.event_log_latency = Histogram(
            "aiqleads_gateway_event_log_seconds",
            "Round trips to the event store: one feedback, or one batch of impressions.",
            ("kind",),
            buckets=LATENCY_BUCKETS,
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
