"""Read the raw contract tables of a data set into typed pandas frames.

The readers are the feature store's offline sources (`aiqleads.features.sources`), shared
with the materialization; this module keeps ExampleGen's names for them.
"""

from __future__ import annotations

from aiqleads.features.sources import (
    DAY_SECONDS,
    TS_SECONDS,
    day_end_seconds,
    read_events,
    read_leads,
    read_market,
    read_users,
    spans_up_to,
    to_seconds,
)

__all__ = [
    "DAY_SECONDS",
    "TS_SECONDS",
    "day_end_seconds",
    "read_events",
    "read_leads",
    "read_market",
    "read_users",
    "spans_up_to",
    "to_seconds",
]
