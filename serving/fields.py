"""What the settings models declare alike: ports, bounded numbers, a field bounded by another,
Redis addresses and the password files that go with them.

The field factories return what ``pydantic.Field`` returns (``port: Port = port_field(0,
"...")``), so a model's JSON schema, validation and command-line flags
(`aiqleads.settings_flags`) are those of the equivalent ``Field(...)``.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, Field, ValidationInfo, field_validator

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def port_field(default: int, description: str) -> Any:
    """A TCP port (0 to 65535)."""
    return Field(default, ge=0, le=65535, description=description)


def bounded(default: float, ge: float, le: float, description: str | None = None) -> Any:
    """A number from ``ge`` to ``le``, both included."""
    return Field(default, ge=ge, le=le, description=description)


def at_most(name: str, limit: str) -> Any:
    """A validator of a model's field ``name``: at most its field ``limit`` (declared before)."""

    def check(value: float, info: ValidationInfo) -> float:
        bound = info.data.get(limit)
        if bound is not None and value > bound:
            raise ValueError(f"{name} ({value}) exceeds {limit} ({bound})")
        return value

    return field_validator(name)(check)


def password_file(of: str, more: str = "") -> Any:
    """An optional file holding the password of ``of`` (a mounted Secret), read at start so
    that the password never shows in the process list; ``more`` ends the description."""
    return Field(None, description=f"File with {of}'s password (a mounted Secret){more}.")


def _redis_scheme(value: str | None) -> str | None:
    if value is not None and not value.startswith(REDIS_SCHEMES):
        raise ValueError(f"{value!r} must start with redis://, rediss:// or unix://")
    return value


# A Redis address: redis://, rediss:// (TLS) or unix:// (a socket).
RedisUrl = Annotated[str, AfterValidator(_redis_scheme)]
OptionalRedisUrl = Annotated[str | None, AfterValidator(_redis_scheme)]
