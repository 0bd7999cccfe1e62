"""The synthetic world's fixed facts and settings: metros, property types, the drift
scenarios' constants, `SynthConfig` with its presets, and the `World` the generator draws.

The generator (`aiqleads.data.synth`) and its market and drift part
(`aiqleads.data.synth_market`) both read these: synth -> synth_market -> synth_world.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from aiqleads.data import synth_behaviour as behaviour
from aiqleads.errors import DataError

DRIFT_SCENARIOS = ("price_inflation", "new_hotspot", "event_mix")
PROPERTY_TYPES = ("house", "condo", "townhouse", "multi_family")
TYPE_AREA_M2 = np.array([170.0, 80.0, 130.0, 240.0])
TYPE_PRICE_FACTOR = np.array([1.0, 1.1, 0.95, 0.85])
NEIGHBOURHOODS_PER_METRO = 8
PRE_LISTED_DAYS = 60
"""Leads can be listed up to this many days before the first span (the starting stock)."""
MEAN_DAYS_ON_MARKET = 70.0
INFLATION = 1.35
HOTSPOT_SHARE = 0.5
EVENT_MIX_SCALE = (1.8, 1.5, 1.0)


@dataclasses.dataclass(frozen=True)
class Metro:
    name: str
    latitude: float
    longitude: float
    price_per_m2: float  # USD, a plausible level, not a statistic
    share: float


METROS = (
    Metro("seattle", 47.6062, -122.3321, 6_500.0, 0.24),
    Metro("austin", 30.2672, -97.7431, 4_300.0, 0.20),
    Metro("denver", 39.7392, -104.9903, 4_800.0, 0.18),
    Metro("atlanta", 33.7490, -84.3880, 3_300.0, 0.18),
    Metro("boston", 42.3601, -71.0589, 7_800.0, 0.20),
)


@dataclasses.dataclass(frozen=True)
class SynthConfig:
    """What to generate. ``events`` is a target (about that many); None means 25 per user."""

    users: int = 2_000
    leads: int = 1_000
    days: int = 30
    events: int | None = 75_000
    seed: int = 42
    start_date: dt.date = dt.date(2026, 1, 1)
    drift: str | None = None
    drift_days: int = 7
    candidates_per_view: int = behaviour.CANDIDATES_PER_VIEW
    name: str = "synthetic"

    def validated(self) -> SynthConfig:
        """This config, or a DataError naming the bad value."""
        bounds = {"users": (10, 2_000_000), "leads": (10, 1_000_000), "days": (2, 3_650)}
        for key, (low, high) in bounds.items():
            value = getattr(self, key)
            if not low <= value <= high:
                raise DataError(f"synth: {key}={value} is out of range [{low}, {high}]")
        if self.events is not None and not 1 <= self.events <= 50_000_000:
            raise DataError(f"synth: events={self.events} is out of range [1, 50000000]")
        top = behaviour.MAX_CANDIDATES_PER_VIEW
        if not 1 <= self.candidates_per_view <= top:
            raise DataError(
                f"synth: candidates_per_view={self.candidates_per_view} is out of range [1, {top}]"
            )
        if not 0 <= self.seed < 2**63:
            raise DataError(f"synth: seed={self.seed} must be in [0, 2**63)")
        if self.drift is not None and self.drift not in DRIFT_SCENARIOS:
            raise DataError(
                f"synth: unknown drift {self.drift!r}; one of {', '.join(DRIFT_SCENARIOS)}"
            )
        if self.drift is not None and not 1 <= self.drift_days < self.days:
            raise DataError(f"synth: drift_days={self.drift_days} must be in [1, days={self.days})")
        return self

    @property
    def target_events(self) -> int:
        return self.events if self.events is not None else 25 * self.users

    @property
    def drift_start(self) -> int:
        """Index of the first drifted day (== days when there is no drift)."""
        return self.days - self.drift_days if self.drift else self.days


PRESETS = {
    "default": SynthConfig(users=2_000, leads=1_000, days=30, events=75_000, name="default"),
    "smoke": SynthConfig(users=300, leads=200, days=14, events=7_500, name="smoke"),
}


def preset(name: str, **overrides: Any) -> SynthConfig:
    """A preset config with some fields replaced (``None`` values are ignored)."""
    if name not in PRESETS:
        raise DataError(f"synth: unknown preset {name!r}; one of {', '.join(PRESETS)}")
    changes = {k: v for k, v in overrides.items() if v is not None}
    return dataclasses.replace(PRESETS[name], **changes).validated()


@dataclasses.dataclass
class World:
    """Everything drawn before events: regions, the catalogue, the population."""

    region_names: list[str]
    region_metro: NDArray[np.int64]
    price_index: NDArray[np.float64]  # (regions, PRE_LISTED_DAYS + days + 7), day -67 first
    catalogue: behaviour.Catalogue
    base_value: NDArray[np.float64]  # lead price / index on its listing day
    leads: pd.DataFrame
    users: pd.DataFrame
    ground_truth: pd.DataFrame
    population: behaviour.Population
    hooks: behaviour.DriftHooks
    drift: dict[str, Any] | None
