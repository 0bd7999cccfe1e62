"""How ExampleGen drew the negatives, as the prior `recommend` ranks with.

The model is a classifier of real events against sampled negatives, so its logit estimates
``log p_event(lead | user) - log p_negative(lead | user)`` plus a constant. Ranking a user's
catalogue needs ``p_event``, so `recommend` adds ``log p_negative`` back: the sampling-bias
("logQ") correction of models trained on sampled negatives. ExampleGen draws a positive's
negatives (`components/example_gen/interactions.py`) as a ``hard_fraction`` share uniform
over the positive's region and the rest in proportion to ``(events + 1) **
popularity_exponent`` over all leads, so for user ``u`` and lead ``l`` of region ``R``:

    p_negative(l | u) = h * share_u(R) / leads(R) + (1 - h) * q(l)

``share_u(R)`` is the share of ``u``'s window events on leads of ``R``, ``leads(R)`` the
number of active leads of ``R`` and ``q`` the popularity draw normalised over the active
catalogue. Without the correction the ranking under-weights what users engage with most: the
sampler shows popular and same-region leads to the classifier as negatives more often.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from aiqleads import contracts as c
from components.example_gen.interactions import SamplingConfig
from transforms import features as f

MIN_PROPENSITY = 1e-9  # a lead the sampler could never draw for this user (h = 1)


@dataclasses.dataclass(frozen=True)
class SamplingPrior:
    """``p_negative`` over the snapshot users x the active catalogue, in sparse parts."""

    negatives_per_positive: int
    lead_region: np.ndarray  # int64 [leads]: region index of each catalogue row
    region_rate: np.ndarray  # float64 [leads]: h / leads(region of the row)
    popular: np.ndarray  # float64 [leads]: (1 - h) * q(row)
    share_user: np.ndarray  # int64 [E]: snapshot user rows ...
    share_region: np.ndarray  # int64 [E]: ... x region indices ...
    share: np.ndarray  # float64 [E]: ... -> share_u(R), only where positive
    n_regions: int

    @classmethod
    def fit(
        cls,
        window_events: pd.DataFrame,
        catalogue: pd.DataFrame,
        users: pd.DataFrame,
        sampling: SamplingConfig,
    ) -> SamplingPrior:
        """The prior of ``sampling`` given the events of the training window (``user_id``,
        ``lead_id``), the active ``catalogue`` (``lead_id``, ``region``) and the snapshot
        ``users`` (``user_id``; their row order is the model's)."""
        h = sampling.hard_fraction
        lead_ids = catalogue[f.LEAD_ID].astype(str).to_numpy()
        regions, lead_region = np.unique(catalogue[f.REGION].astype(str), return_inverse=True)
        region_size = np.bincount(lead_region, minlength=len(regions)).astype(np.float64)
        counts = (
            window_events.groupby(window_events[c.LEAD_ID].astype(str))
            .size()
            .reindex(lead_ids)
            .fillna(0.0)
            .to_numpy(np.float64)
        )
        q = (counts + 1.0) ** sampling.popularity_exponent
        region_of = pd.Series(lead_region, index=lead_ids)
        user_row = pd.Series(np.arange(len(users)), index=users[f.USER_ID].astype(str))
        events = pd.DataFrame(
            {
                "user": user_row.reindex(window_events[c.USER_ID].astype(str)).to_numpy(),
                "region": region_of.reindex(window_events[c.LEAD_ID].astype(str)).to_numpy(),
            }
        )
        # Events on leads that left the catalogue still count towards the user's total.
        per_user = events.dropna(subset=["user"]).groupby("user").size()
        per_region = events.dropna().groupby(["user", "region"]).size()
        share = per_region / per_user.reindex(per_region.index.get_level_values("user")).to_numpy()
        return cls(
            negatives_per_positive=sampling.negatives_per_positive,
            lead_region=lead_region.astype(np.int64),
            region_rate=h / region_size[lead_region],
            popular=(1.0 - h) * q / q.sum(),
            share_user=per_region.index.get_level_values("user").to_numpy(np.int64),
            share_region=per_region.index.get_level_values("region").to_numpy(np.int64),
            share=share.to_numpy(np.float64),
            n_regions=len(regions),
        )

    def share_keys(self) -> np.ndarray:
        """Keys of the user x region share table: ``user_row * n_regions + region``."""
        return self.share_user * self.n_regions + self.share_region

    @property
    def log_negatives(self) -> float:
        """``log`` of the negatives per positive: shifts every logit alike, so scores read as
        the estimated share of the user's engagements that go to the lead."""
        return float(np.log(max(self.negatives_per_positive, 1)))

    def log_propensity(self, user_rows: np.ndarray, lead_rows: np.ndarray) -> np.ndarray:
        """``log p_negative`` for snapshot user rows (-1: unknown) x catalogue rows (the
        reference for the graph version in `sampling_correction.SamplingCorrection`)."""
        user_rows = np.asarray(user_rows, np.int64)
        lead_rows = np.asarray(lead_rows, np.int64)
        table = dict(zip(self.share_keys().tolist(), self.share.tolist(), strict=True))
        keys = user_rows * self.n_regions + self.lead_region[lead_rows]
        share = np.array(
            [
                table.get(int(k), 0.0) if u >= 0 else 0.0
                for k, u in zip(keys, user_rows, strict=True)
            ],
            np.float64,
        )
        p = self.popular[lead_rows] + self.region_rate[lead_rows] * share
        return np.log(np.maximum(p, MIN_PROPENSITY))
