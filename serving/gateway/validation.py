"""Validation of API requests at the boundary: typed, bounded, with messages that say the fix.

REST bodies and gRPC messages both become plain mappings and pass through the same functions,
so the two transports accept and reject exactly the same requests.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from aiqleads.contracts import EVENT_TYPES
from serving.errors import invalid

MAX_K = 100
ID_PATTERN = re.compile(r"^[A-Za-z0-9_.:@-]{1,64}$")
ID_RULE = "1-64 characters of letters, digits and _ . : @ -"
RECOMMEND_FIELDS = ("user_id", "k", "latitude", "longitude")
FEEDBACK_REQUIRED = ("request_id", "user_id", "lead_id", "event_type")
FEEDBACK_FIELDS = (*FEEDBACK_REQUIRED, "feedback_id")


@dataclass(frozen=True)
class RecommendRequest:
    user_id: str
    k: int
    latitude: float | None = None
    longitude: float | None = None

    @property
    def has_location(self) -> bool:
        return self.latitude is not None


@dataclass(frozen=True)
class FeedbackRequest:
    request_id: str
    user_id: str
    lead_id: str
    event_type: str
    feedback_id: str | None = None  # the client's idempotency key; derived when absent


def _require_object(
    body: Any, allowed: tuple[str, ...], required: tuple[str, ...]
) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise invalid(f"the request body must be a JSON object with fields {', '.join(allowed)}")
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise invalid(
            f"unknown field(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(allowed)}"
        )
    missing = [name for name in required if name not in body or body[name] is None]
    if missing:
        raise invalid(f"missing required field(s): {', '.join(missing)}")
    return body


def _identifier(body: dict[str, Any], name: str) -> str:
    value = body[name]
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
        raise invalid(f"{name} {shown} is invalid: use {ID_RULE}")
    return value


def _coordinate(body: dict[str, Any], name: str, bound: float) -> float:
    value = body[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise invalid(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value) or not -bound <= value <= bound:
        raise invalid(f"{name} {value!r} is out of range: use -{bound:g}..{bound:g}")
    return float(value)


def parse_recommend(body: Any) -> RecommendRequest:
    """A valid `RecommendRequest` from a decoded body, or an INVALID_ARGUMENT `ServingError`."""
    body = _require_object(body, RECOMMEND_FIELDS, ("user_id", "k"))
    user_id = _identifier(body, "user_id")
    k = body["k"]
    if isinstance(k, bool) or not isinstance(k, int):
        raise invalid(f"k must be an integer 1..{MAX_K}, got {k!r}")
    if not 1 <= k <= MAX_K:
        raise invalid(f"k {k} is out of range: use 1..{MAX_K}")
    has_lat = body.get("latitude") is not None
    has_lon = body.get("longitude") is not None
    if has_lat != has_lon:
        raise invalid("give latitude and longitude together, or neither")
    if not has_lat:
        return RecommendRequest(user_id=user_id, k=k)
    return RecommendRequest(
        user_id=user_id,
        k=k,
        latitude=_coordinate(body, "latitude", 90.0),
        longitude=_coordinate(body, "longitude", 180.0),
    )


def parse_feedback(body: Any) -> FeedbackRequest:
    """A valid `FeedbackRequest` from a decoded body, or an INVALID_ARGUMENT `ServingError`."""
    body = _require_object(body, FEEDBACK_FIELDS, FEEDBACK_REQUIRED)
    ids = {name: _identifier(body, name) for name in ("request_id", "user_id", "lead_id")}
    if body.get("feedback_id") is not None:
        ids["feedback_id"] = _identifier(body, "feedback_id")
    event_type = body["event_type"]
    if event_type not in EVENT_TYPES:
        raise invalid(f"event_type {event_type!r} is unknown: use one of {', '.join(EVENT_TYPES)}")
    return FeedbackRequest(event_type=event_type, **ids)
