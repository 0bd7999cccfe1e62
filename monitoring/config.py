"""Typed, frozen, validated settings of one monitor process (its flags derive from them)."""

from __future__ import annotations

import pathlib

from pydantic import Field, ValidationError

from aiqleads.errors import ConfigError
from aiqleads.settings_io import describe_validation_error
from serving.fields import RedisUrl, password_file
from serving.secret_files import url_with_password
from serving.settings import MonitorSettings


class MonitorConfig(MonitorSettings):
    """What `python -m monitoring` needs: the stack-wide `MonitorSettings` and its store."""

    event_store_url: RedisUrl = Field(description="The event log to follow (redis://...).")
    event_store_password_file: pathlib.Path | None = password_file(
        "the event store", "; a password in --event-store-url would be in the process list"
    )
    block_ms: int = Field(
        500, ge=10, le=60_000, description="Longest wait of one read for new records."
    )
    model_base_path: pathlib.Path | None = Field(
        None,
        description="Versioned SavedModels; each version's published training statistics "
        "are what its served features are compared with (no drift gauges without it).",
    )

    def with_passwords(self) -> MonitorConfig:
        """A copy whose URL holds the password file's password (read now), for the client."""
        url = url_with_password(self.event_store_url, self.event_store_password_file)
        return self.model_copy(update={"event_store_url": url})


def parse_config(data: dict) -> MonitorConfig:
    try:
        return MonitorConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(f"invalid monitor settings: {describe_validation_error(e)}") from e
