"""A user's aggregation state, folded one event at a time, and the feature values it gives.

Materialization folds a user's whole history into a `UserState`; the streaming updater
folds each new event into the stored state. Both then write the values `behaviour` and
`geo` derive, so the online store holds, for every user, what ExampleGen's as-of joins
(``components/example_gen/features_join.py``) give a query at the same time: counts per
event type, the last event's time, the median price of the leads engaged with, the
location (home, else the centroid of the leads engaged with), the weighted events per lead
and the shares of them per property type and region. The skew test holds the two to equal.

The state is what the fold needs and the values do not say: every price (for the median),
the coordinate sums, the weights per group, the home, and the watermark (the event time up
to which every event is in, and the stream entry last applied).
"""

from __future__ import annotations

import bisect
import json
import math
from dataclasses import dataclass, field
from typing import Any

from aiqleads.features import definitions as d
from aiqleads.features.definitions import FeatureValue

EVENT_WEIGHTS = {"view": 1.0, "click": 2.0, "inquiry": 4.0, "purchase": 8.0}
"""How much one event of each type counts in the pair and share features (as in
``transforms.features.EVENT_WEIGHTS``; a test checks they agree)."""
DAY_SECONDS = 86_400.0


@dataclass(frozen=True)
class LeadInfo:
    """What the fold needs of an event's lead (NaN / "" when unknown)."""

    latitude: float = math.nan
    longitude: float = math.nan
    price: float = math.nan
    property_type: str = ""
    region: str = ""


UNKNOWN_LEAD = LeadInfo()


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


@dataclass
class UserState:
    counts: dict[str, int] = field(default_factory=dict)
    last_ts: float | None = None
    prices: list[float] = field(default_factory=list)  # sorted
    geo_n: int = 0
    lat_sum: float = 0.0
    lon_sum: float = 0.0
    total_weight: float = 0.0
    type_weights: dict[str, float] = field(default_factory=dict)
    region_weights: dict[str, float] = field(default_factory=dict)
    lead_weights: dict[str, float] = field(default_factory=dict)
    home: tuple[float, float] | None = None
    watermark: float = 0.0
    """Every event before this time is in the state."""
    last_entry: str = ""
    """The event-log entry (``<ms>-<seq>``) last applied: a redelivery is skipped."""

    def apply(self, event_type: str, ts: float, lead_id: str, lead: LeadInfo) -> None:
        """Fold one event in (unknown event types count in the last event's time only,
        as in ExampleGen's joins)."""
        count_key = d.COUNT_FEATURES.get(event_type)
        if count_key is not None:
            self.counts[count_key] = self.counts.get(count_key, 0) + 1
        self.last_ts = ts if self.last_ts is None else max(self.last_ts, ts)
        if _finite(lead.price):
            bisect.insort(self.prices, lead.price)
        if _finite(lead.latitude) and _finite(lead.longitude):
            self.geo_n += 1
            self.lat_sum += lead.latitude
            self.lon_sum += lead.longitude
        weight = EVENT_WEIGHTS.get(event_type, 0.0)
        self.total_weight += weight
        self.lead_weights[lead_id] = self.lead_weights.get(lead_id, 0.0) + weight
        if lead.property_type:
            self.type_weights[lead.property_type] = (
                self.type_weights.get(lead.property_type, 0.0) + weight
            )
        if lead.region:
            self.region_weights[lead.region] = self.region_weights.get(lead.region, 0.0) + weight

    # -- values --------------------------------------------------------------------------------
    def median_price(self) -> float | None:
        n = len(self.prices)
        if n == 0:
            return None
        mid = n // 2
        return self.prices[mid] if n % 2 else (self.prices[mid - 1] + self.prices[mid]) / 2

    def location(self) -> tuple[float | None, float | None, str]:
        if self.home is not None:
            return self.home[0], self.home[1], "home"
        if self.geo_n > 0:
            return self.lat_sum / self.geo_n, self.lon_sum / self.geo_n, "activity"
        return None, None, "none"

    def _shares(self, weights: dict[str, float]) -> dict[str, float]:
        if self.total_weight <= 0:
            return {}
        return {k: w / self.total_weight for k, w in sorted(weights.items()) if w > 0}

    def values(self) -> dict[str, FeatureValue]:
        """Every user feature this state gives, by name (the views pick theirs)."""
        lat, lon, source = self.location()
        return {
            **{name: self.counts.get(name, 0) for name in d.COUNT_FEATURES.values()},
            d.USER_LAST_EVENT_TS: self.last_ts,
            d.USER_MEDIAN_PRICE: self.median_price(),
            d.USER_TYPE_SHARES: self._shares(self.type_weights),
            d.USER_REGION_SHARES: self._shares(self.region_weights),
            d.USER_LEAD_EVENTS: {k: w for k, w in sorted(self.lead_weights.items()) if w > 0},
            d.USER_LATITUDE: lat,
            d.USER_LONGITUDE: lon,
            d.USER_LOCATION_SOURCE: source,
        }

    # -- storage -------------------------------------------------------------------------------
    def dumps(self) -> str:
        return json.dumps(
            {
                "c": self.counts,
                "t": self.last_ts,
                "p": self.prices,
                "g": [self.geo_n, self.lat_sum, self.lon_sum],
                "w": self.total_weight,
                "tw": self.type_weights,
                "rw": self.region_weights,
                "lw": self.lead_weights,
                "h": list(self.home) if self.home is not None else None,
                "wm": self.watermark,
                "e": self.last_entry,
            },
            separators=(",", ":"),
        )

    @classmethod
    def loads(cls, text: str | bytes) -> UserState:
        data: dict[str, Any] = json.loads(text)
        home = data.get("h")
        geo = data.get("g") or [0, 0.0, 0.0]
        return cls(
            counts={str(k): int(v) for k, v in (data.get("c") or {}).items()},
            last_ts=data.get("t"),
            prices=[float(p) for p in data.get("p") or []],
            geo_n=int(geo[0]),
            lat_sum=float(geo[1]),
            lon_sum=float(geo[2]),
            total_weight=float(data.get("w") or 0.0),
            type_weights={str(k): float(v) for k, v in (data.get("tw") or {}).items()},
            region_weights={str(k): float(v) for k, v in (data.get("rw") or {}).items()},
            lead_weights={str(k): float(v) for k, v in (data.get("lw") or {}).items()},
            home=(float(home[0]), float(home[1])) if home else None,
            watermark=float(data.get("wm") or 0.0),
            last_entry=str(data.get("e") or ""),
        )


def entry_after(entry_id: str, last: str) -> bool:
    """True when stream entry ``entry_id`` comes after ``last`` (``""``: before any)."""
    if not last:
        return True
    a_ms, _, a_seq = entry_id.partition("-")
    b_ms, _, b_seq = last.partition("-")
    return (int(a_ms), int(a_seq or 0)) > (int(b_ms), int(b_seq or 0))


def days_since(last_ts: float | None, at_ts: float) -> float | None:
    """``user_days_since_last_event`` at ``at_ts`` (None: no event yet)."""
    if last_ts is None:
        return None
    return (at_ts - last_ts) / DAY_SECONDS
