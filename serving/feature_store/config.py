"""Typed, frozen, validated settings of the streaming updater process; its flags come from
these fields (`aiqleads.settings_flags`)."""

from __future__ import annotations

import pathlib
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aiqleads.errors import ConfigError
from aiqleads.settings_io import describe_validation_error
from serving.fields import RedisUrl, password_file, port_field
from serving.secret_files import url_with_password
from serving.settings import Port


class UpdaterConfig(BaseModel):
    """Where the updater reads events and writes features, and how it batches."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = Field("127.0.0.1", description="Address of /metrics.")
    port: Port = port_field(0, "Metrics port; 0 picks a free one.")
    online_store_url: RedisUrl = Field(description="The online feature store (redis://...).")
    event_store_url: RedisUrl = Field(description="The event log whose feedback it follows.")
    online_store_password_file: pathlib.Path | None = password_file("the online store")
    event_store_password_file: pathlib.Path | None = password_file("the event store")
    data_dir: pathlib.Path | None = Field(
        None,
        description="Data set to materialize at start when the store holds no "
        "materialization of its newest complete span (none: stream only).",
    )
    consumer: str = Field("updater", description="Consumer name in the 'features' group.")
    batch: int = Field(256, ge=1, le=10_000, description="Feedback entries per round.")
    block_ms: int = Field(
        500, ge=1, le=60_000, description="How long one read waits for new feedback."
    )

    def with_passwords(self) -> UpdaterConfig:
        """A copy whose URLs hold the passwords of the password files (never log it)."""
        return self.model_copy(
            update={
                "online_store_url": url_with_password(
                    self.online_store_url, self.online_store_password_file
                ),
                "event_store_url": url_with_password(
                    self.event_store_url, self.event_store_password_file
                ),
            }
        )


def parse_config(data: Mapping[str, Any]) -> UpdaterConfig:
    try:
        return UpdaterConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(f"invalid updater settings: {describe_validation_error(e)}") from e
