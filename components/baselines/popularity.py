"""Per-region popularity: rank leads by engagement-weighted events in the training period.

A user's region is the region of most of their training engagement; users without history
(cold start) get the global ranking.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from aiqleads import contracts as c

WEIGHTS = {"view": 1.0, "click": 2.0, "inquiry": 4.0, "purchase": 8.0}


class RegionalPopularity:
    """Fit on training events; score any (user, lead) pairs over a catalogue."""

    def __init__(self, lead_ids: np.ndarray, lead_regions: np.ndarray) -> None:
        self.lead_ids = np.asarray(lead_ids)
        self.lead_regions = np.asarray(lead_regions)
        self._index = {lead: i for i, lead in enumerate(self.lead_ids)}
        self.scores = np.zeros(len(self.lead_ids))
        self.user_region: dict[str, str] = {}

    def fit(self, events: pd.DataFrame) -> RegionalPopularity:
        w = events[c.EVENT_TYPE].map(WEIGHTS).fillna(0.0)
        per_lead = w.groupby(events[c.LEAD_ID]).sum()
        self.scores = per_lead.reindex(self.lead_ids).fillna(0.0).to_numpy(float)
        region_of = pd.Series(self.lead_regions, index=self.lead_ids)
        regions = events[c.LEAD_ID].map(region_of)
        known = regions.notna()
        per_user = (
            pd.DataFrame({"u": events[c.USER_ID][known], "r": regions[known], "w": w[known]})
            .groupby(["u", "r"])["w"]
            .sum()
            .reset_index()
            .sort_values(["u", "w", "r"], ascending=[True, False, True])
            .drop_duplicates("u")
        )
        self.user_region = dict(zip(per_user["u"], per_user["r"], strict=True))
        return self

    def score(self, user_id: str) -> np.ndarray:
        """Scores over the catalogue: popularity, leads of the user's region first."""
        region = self.user_region.get(user_id)
        if region is None:
            return self.scores.copy()
        boost = (self.lead_regions == region) * (self.scores.max() + 1.0)
        return self.scores + boost
