"""Typed, frozen, validated settings of one gateway process."""

from __future__ import annotations

import pathlib
import re

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from aiqleads.errors import ConfigError
from aiqleads.settings_io import describe_validation_error

_HOST_PORT = re.compile(r"^[A-Za-z0-9.\-]+:\d{1,5}$")
_IPV4_PORT = re.compile(r"^\d{1,3}(\.\d{1,3}){3}:\d{1,5}$")


def local_ttl_within_redis_ttl(cls, value: float, info) -> float:
    """Validator shared with `serving.settings`: the in-process tier expires before Redis."""
    ttl = info.data.get("cache_ttl_seconds")
    if ttl is not None and value > ttl:
        raise ValueError(f"local_cache_ttl_seconds ({value}) exceeds cache_ttl_seconds ({ttl})")
    return value


class GatewayConfig(BaseModel):
    """Everything one gateway replica needs; built from flags by `serving.gateway.__main__`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    rest_port: int = Field(8500, ge=0, le=65535, description="0 picks a free port")
    grpc_port: int = Field(8501, ge=0, le=65535, description="0 picks a free port")
    redis_url: str = "redis://127.0.0.1:6379/0"
    model_servers: tuple[str, ...] = Field(("127.0.0.1:8500",), min_length=1, max_length=16)
    model_name: str = Field("lead_recommender", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    cache_ttl_seconds: int = Field(300, ge=1, le=86400)
    local_cache_entries: int = Field(
        10_000, ge=0, le=10_000_000, description="in-process answers kept; 0 turns it off"
    )
    local_cache_ttl_seconds: float = Field(10.0, gt=0, le=3600)
    canary_fraction: float = Field(0.0, ge=0.0, le=1.0)
    request_timeout_ms: int = Field(500, ge=10, le=60_000)
    model_retries: int = Field(1, ge=0, le=5, description="extra tries on UNAVAILABLE")
    version_refresh_seconds: float = Field(2.0, gt=0, le=3600)
    redis_timeout_ms: int = Field(50, ge=1, le=10_000)
    lock_ttl_ms: int = Field(1000, ge=10, le=60_000)
    max_body_bytes: int = Field(16 * 1024, ge=256, le=16 * 1024 * 1024)
    online_features: bool = False
    log_dir: pathlib.Path | None = None
    log_max_bytes: int = Field(16 * 1024 * 1024, ge=1024, le=1 << 34)
    log_backups: int = Field(4, ge=1, le=100)
    stop_grace_seconds: float = Field(5.0, ge=0, le=300)

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

    _local_ttl = field_validator("local_cache_ttl_seconds")(local_ttl_within_redis_ttl)

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"{value!r} must start with redis://, rediss:// or unix://")
        return value

    @property
    def grpc_target(self) -> str:
        """One gRPC target for all model servers (round robin when there are several)."""
        if len(self.model_servers) == 1:
            return self.model_servers[0]
        return "ipv4:" + ",".join(self.model_servers)


def parse_config(data: dict) -> GatewayConfig:
    """Validate a mapping into a `GatewayConfig`, naming every bad field in one line."""
    try:
        return GatewayConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(f"invalid gateway settings: {describe_validation_error(e)}") from e
