"""Typed, frozen, validated settings of one gateway process.

`GatewayConfig` is the single source of the gateway's defaults: `aiqleads.settings_flags`
derives the command line from its fields, and the fields every replica of a stack shares
come from `serving.settings.GatewayOptions`.
"""

from __future__ import annotations

import pathlib
import re
from collections.abc import Mapping
from typing import Any

from pydantic import Field, ValidationError, field_validator

from aiqleads.errors import ConfigError
from aiqleads.events.attribution import KEY_ENV
from aiqleads.settings_io import describe_validation_error
from serving.fields import OptionalRedisUrl, RedisUrl, bounded, password_file, port_field
from serving.secret_files import url_with_password
from serving.settings import (
    GATEWAY_GRPC_PORT,
    GATEWAY_REST_PORT,
    MODEL_NAME,
    GatewayOptions,
    ModelName,
    Port,
)

_HOST_PORT = re.compile(r"^[A-Za-z0-9.\-]+:\d{1,5}$")
_IPV4_PORT = re.compile(r"^\d{1,3}(\.\d{1,3}){3}:\d{1,5}$")


class GatewayConfig(GatewayOptions):
    """Everything one gateway replica needs; built from flags by `serving.gateway.__main__`."""

    host: str = Field("127.0.0.1", description="Address to bind.")
    rest_port: Port = port_field(
        GATEWAY_REST_PORT,
        f"REST port; 0 picks a free one ({GATEWAY_REST_PORT}: off TF Serving's 8500/8501, "
        "which a model server on the same host takes).",
    )
    grpc_port: Port = port_field(
        GATEWAY_GRPC_PORT,
        f"gRPC port; 0 picks a free one ({GATEWAY_GRPC_PORT}: off TF Serving's 8500/8501).",
    )
    redis_url: RedisUrl = Field(
        "redis://127.0.0.1:6379/0", description="The answer cache (redis://, rediss://, unix://)."
    )
    model_servers: tuple[str, ...] = Field(
        min_length=1,
        max_length=16,
        description="HOST:PORT of a model server's gRPC API (repeat, or comma-separate, for "
        "several).",
    )
    model_name: ModelName = Field(MODEL_NAME, description="The model to serve.")
    model_retries: int = bounded(
        1, 0, 5, "Extra tries of a model call that failed with UNAVAILABLE."
    )
    version_refresh_seconds: float = Field(
        2.0,
        gt=0,
        le=3600,
        description="How often to ask the model servers for versions and labels.",
    )
    redis_timeout_ms: int = bounded(50, 1, 10_000, "Socket timeout of each Redis call.")
    lock_ttl_ms: int = bounded(
        1000,
        10,
        60_000,
        "Lifetime of the fill lock that lets one replica compute a missing answer.",
    )
    max_body_bytes: int = bounded(16 * 1024, 256, 16 * 1024 * 1024, "Largest REST body accepted.")
    online_store_url: OptionalRedisUrl = Field(
        None,
        description="The online feature store (redis://...): the user's features and the "
        "unavailable leads go to the model with each recommendation; without it the model "
        "answers from the snapshot it was trained with.",
    )
    online_store_password_file: pathlib.Path | None = password_file("the online store")
    event_store_url: OptionalRedisUrl = Field(
        None,
        description="The event log (redis://...) that impressions and feedback go to; without "
        "it answers are not logged and feedback answers 503.",
    )
    redis_password_file: pathlib.Path | None = password_file(
        "the cache", "; a password in --redis-url would be in the process list"
    )
    event_store_password_file: pathlib.Path | None = password_file("the event store", ", likewise")
    event_store_timeout_ms: int = bounded(
        1000, 10, 60_000, "Deadline of one write to the event store."
    )
    attribution_key_file: pathlib.Path | None = Field(
        None,
        description="File (mode 0600) with the hex key that signs request ids, shared by every "
        f"replica; without it, the {KEY_ENV} environment variable.",
    )
    canary_fraction_file: pathlib.Path | None = Field(
        None,
        description="The deployment's canary.json (aiqleads models canary): its fraction, "
        "re-read with every version refresh, overrides --canary-fraction.",
    )
    stop_grace_seconds: float = bounded(
        5.0, 0, 300, "How long a stop waits for requests in flight."
    )
    drain_seconds: float = bounded(
        0.0,
        0,
        300,
        "On SIGTERM, how long /healthz answers 503 while requests are still "
        "served, before the stop: long enough for Envoy's health checks to take the replica "
        "out of rotation (unhealthy_threshold x interval).",
    )
    require_claims: bool = Field(
        False,
        description="Check the verified token Envoy forwards (x-aiqleads-jwt-payload): a "
        "caller asks for, and posts feedback for, only the users its token allows.",
    )

    @field_validator("model_servers")
    @classmethod
    def _host_ports(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for target in value:
            if not _HOST_PORT.match(target):
                raise ValueError(f"model server {target!r} is not HOST:PORT")
            if len(value) > 1 and not _IPV4_PORT.match(target):
                raise ValueError(
                    f"model server {target!r}: with several servers give IPv4 addresses "
                    "(or one HOST:PORT of a load balancer such as Envoy)"
                )
        return value

    def with_passwords(self) -> GatewayConfig:
        """A copy whose URLs hold the passwords of the password files (read now), for the
        clients; never log its URLs unredacted."""
        urls = {"redis_url": url_with_password(self.redis_url, self.redis_password_file)}
        if self.event_store_url is not None:
            urls["event_store_url"] = url_with_password(
                self.event_store_url, self.event_store_password_file
            )
        if self.online_store_url is not None:
            urls["online_store_url"] = url_with_password(
                self.online_store_url, self.online_store_password_file
            )
        return self.model_copy(update=urls)

    @property
    def grpc_target(self) -> str:
        """One gRPC target for all model servers (round robin when there are several)."""
        if len(self.model_servers) == 1:
            return self.model_servers[0]
        return "ipv4:" + ",".join(self.model_servers)


def parse_config(data: Mapping[str, Any]) -> GatewayConfig:
    """Validate a mapping into a `GatewayConfig`, naming every bad field in one line."""
    try:
        return GatewayConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(f"invalid gateway settings: {describe_validation_error(e)}") from e
