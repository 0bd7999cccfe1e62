"""The records of the event log and their encoding: one JSON object per stream entry.

Two Redis streams hold them, both append-only; a stream entry's id (milliseconds since the
epoch and a sequence number) orders them, and ``--since`` reads are ranges over it.

- **Impressions:** one per answer a gateway gave: who asked, what was shown (leads, scores
  and the serving features the skew and drift checks compare), which model version and
  variant answered, and whether the cache did.
- **Feedback:** one per engagement a client reported, with its ``feedback_id`` (the
  idempotency key: a retried feedback is recorded once) and the attribution its signed
  ``request_id`` carries.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from aiqleads import contracts

IMPRESSIONS_STREAM = "aiqleads:events:impressions"
FEEDBACK_STREAM = "aiqleads:events:feedback"
FEEDBACK_ID_PREFIX = "aiqleads:events:feedback-id:"
"""Key prefix of the marker that makes a feedback id count once (with a TTL)."""
RECORD_FIELD = "r"
"""The one field of a stream entry: the record as JSON."""
ENGAGEMENTS = ("click", "inquiry", "purchase")
"""Event types that count as engagement in the online figures (a view does not)."""

# Serving features per shown lead, named as the tf.Example keys the pipeline's drift and skew
# checks compare (transforms.features), and per request.
LEAD_FEATURES = ("region", "property_type", "price", "lead_latitude", "lead_longitude")
REQUEST_FEATURES = ("user_latitude", "user_longitude")


@dataclass(frozen=True)
class Impression:
    """One answer as the user saw it."""

    request_id: str
    ts: float  # seconds since the epoch, when the gateway answered
    user_id: str
    model_version: int
    variant: str
    k: int
    lead_ids: tuple[str, ...]
    scores: tuple[float, ...]
    cache: str  # hit | local | miss | coalesced
    features: dict[str, Any] = field(default_factory=dict)
    """REQUEST_FEATURES as scalars and LEAD_FEATURES as lists parallel to ``lead_ids``
    (a key is absent when the model does not export it)."""

    def encode(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def decode(cls, raw: bytes) -> Impression:
        data = orjson.loads(raw)
        data["lead_ids"] = tuple(data["lead_ids"])
        data["scores"] = tuple(data["scores"])
        return cls(**data)

    def feature_rows(self) -> list[dict[str, Any]]:
        """One row of serving features per shown lead (for the skew check)."""
        request = {k: self.features[k] for k in REQUEST_FEATURES if k in self.features}
        rows = []
        for i, lead_id in enumerate(self.lead_ids):
            row = {"lead_id": lead_id, **request}
            for key in LEAD_FEATURES:
                values = self.features.get(key)
                if isinstance(values, list) and i < len(values) and values[i] is not None:
                    row[key] = values[i]
            rows.append(row)
        return rows


@dataclass(frozen=True)
class Feedback:
    """One engagement a client reported, attributed to the answer it reacted to."""

    feedback_id: str
    request_id: str
    ts: float  # seconds since the epoch, when the gateway accepted it
    user_id: str
    lead_id: str
    event_type: str
    model_version: int
    variant: str
    issued_at: float  # when the answer was given (from the request id)

    def encode(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def decode(cls, raw: bytes) -> Feedback:
        return cls(**orjson.loads(raw))


def default_feedback_id(request_id: str, lead_id: str, event_type: str) -> str:
    """The idempotency key of a feedback that names none: one event per answer, lead, type.

    A client that retries the same report (a timeout, a 503) therefore records it once.
    """
    if event_type not in contracts.EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}")
    digest = hashlib.sha256(f"{request_id}|{lead_id}|{event_type}".encode()).hexdigest()
    return f"f{digest[:40]}"
