"""Item-item collaborative filtering (cosine over user-lead engagement), in numpy.

``score(user) = sum over the user's leads j of w(user, j) * cos(j, i)`` for every lead i,
with engagement weights and the ``neighbours`` strongest similarities kept per lead.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from aiqleads import contracts as c
from components.baselines.popularity import WEIGHTS


class ItemKNN:
    def __init__(self, lead_ids: np.ndarray, neighbours: int = 50) -> None:
        if not 1 <= neighbours <= 10_000:
            raise ValueError(f"neighbours must be in [1, 10000], got {neighbours}")
        self.lead_ids = np.asarray(lead_ids)
        self._index = {lead: i for i, lead in enumerate(self.lead_ids)}
        self.neighbours = neighbours
        self.sim = np.zeros((len(self.lead_ids), len(self.lead_ids)), np.float32)
        self.user_rows: dict[str, np.ndarray] = {}

    def fit(self, events: pd.DataFrame) -> ItemKNN:
        leads = events[c.LEAD_ID].map(self._index)
        keep = leads.notna()
        w = events[c.EVENT_TYPE].map(WEIGHTS).fillna(0.0)[keep].to_numpy(np.float32)
        users, user_idx = np.unique(events[c.USER_ID][keep].to_numpy(), return_inverse=True)
        lead_idx = leads[keep].to_numpy(int)
        matrix = np.zeros((len(users), len(self.lead_ids)), np.float32)
        np.add.at(matrix, (user_idx, lead_idx), w)
        matrix = np.log1p(matrix)
        norms = np.linalg.norm(matrix, axis=0) + 1e-9
        sim = (matrix.T @ matrix) / np.outer(norms, norms)
        np.fill_diagonal(sim, 0.0)
        if self.neighbours < sim.shape[1]:
            cut = -np.partition(-sim, self.neighbours - 1, axis=1)[
                :, self.neighbours - 1 : self.neighbours
            ]
            sim = np.where(sim >= cut, sim, 0.0)
        self.sim = sim.astype(np.float32)
        self.user_rows = {u: matrix[i] for i, u in enumerate(users)}
        return self

    def score(self, user_id: str) -> np.ndarray:
        """Scores over the catalogue (all zeros for a user without history)."""
        row = self.user_rows.get(user_id)
        if row is None:
            return np.zeros(len(self.lead_ids), np.float32)
        return row @ self.sim
