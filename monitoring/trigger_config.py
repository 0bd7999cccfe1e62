"""Typed, frozen, validated settings of one trigger process (its flags derive from them)."""

from __future__ import annotations

import pathlib

from pydantic import Field, ValidationError

from aiqleads.errors import ConfigError
from aiqleads.settings_io import describe_validation_error
from serving.settings import TriggerSettings


class TriggerConfig(TriggerSettings):
    """What `python -m monitoring.trigger` needs: the stack-wide `TriggerSettings`, where it
    keeps its state, and the event store the local runner ingests from."""

    state_dir: pathlib.Path | None = Field(
        None, description="Folder of the trigger's state file and run logs (required)."
    )
    event_store_url: str | None = Field(
        None, description="Event store the local runner ingests before training (redis://...)."
    )


def parse_config(data: dict[str, object]) -> TriggerConfig:
    try:
        config = TriggerConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(f"invalid trigger settings: {describe_validation_error(e)}") from e
    if config.state_dir is None:
        raise ConfigError("the trigger needs --state-dir (where its state survives restarts)")
    return config
