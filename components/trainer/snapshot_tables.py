"""The snapshot's (user, lead) features as lookup tables of the exported graph.

`recommend` scores users against the catalogue as of the training window's last day. Besides
the rows of the catalogue and of the user snapshot (`snapshot_inputs.py`), the full model's
crosses need, for each (user, lead) pair, the user's past engagement with the lead
(`PairHistory`, from `snapshots.load_pair_history`) and the user's shares of engagement on the
lead's group (`UserShares`, from `snapshots.load_user_shares`). Users and leads are addressed
by their row in the user snapshot and the catalogue; row -1 is an unknown user.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import tensorflow as tf

from components.example_gen import features_join
from transforms import features as f


def popularity(events: pd.DataFrame, lead_ids: np.ndarray) -> np.ndarray:
    """Engagement-weighted event count per lead of ``lead_ids`` (views 1 ... purchases 8)."""
    if events.empty:
        return np.zeros(len(lead_ids))
    w = pd.Series(features_join.pair_event_weights(events), index=events.index)
    per_lead = w.groupby(events["lead_id"]).sum()
    return per_lead.reindex(lead_ids).fillna(0.0).to_numpy(dtype=np.float64)


def row_index(ids: pd.Series) -> pd.Series:
    """Row number by id (as text): reindex it with ids to find their rows (NaN: absent)."""
    return pd.Series(np.arange(len(ids)), index=ids.astype(str).to_numpy())


class PairHistory(tf.Module):
    """``user_lead_events`` keyed by ``user_row * n_leads + lead_row`` (snapshot rows)."""

    def __init__(
        self, catalogue: pd.DataFrame, users: pd.DataFrame, pairs: pd.DataFrame | None
    ) -> None:
        super().__init__()
        self.n_leads = len(catalogue)
        keys, values = np.array([-1], np.int64), np.array([0.0], np.float32)  # never empty
        if pairs is not None and len(pairs):
            user_row = row_index(users[f.USER_ID])
            lead_row = row_index(catalogue[f.LEAD_ID])
            u = user_row.reindex(pairs[f.USER_ID].astype(str)).to_numpy()
            lead = lead_row.reindex(pairs[f.LEAD_ID].astype(str)).to_numpy()
            ok = np.isfinite(u) & np.isfinite(lead)  # active leads of known users only
            pair_keys = u[ok].astype(np.int64) * len(catalogue) + lead[ok].astype(np.int64)
            keys = np.concatenate([keys, pair_keys])
            values = np.concatenate([values, pairs[f.USER_LEAD_EVENTS].to_numpy(np.float32)[ok]])
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(keys), tf.constant(values)),
            default_value=0.0,
        )

    def events(self, user_rows: tf.Tensor, lead_rows: tf.Tensor) -> tf.Tensor:
        """``user_lead_events`` of users ``user_rows`` (-1: unknown) x catalogue rows, float32."""
        keys = user_rows * self.n_leads + lead_rows
        found = self.table.lookup(keys)
        return tf.where(user_rows >= 0, found, tf.zeros_like(found))


class UserShares(tf.Module):
    """Each user share (`features.USER_SHARES`) as a dense (users + 1) x (the catalogue's
    values of the lead column it groups by) matrix; the last row, for unknown users, and
    groups a user never engaged with are 0."""

    def __init__(
        self, catalogue: pd.DataFrame, users: pd.DataFrame, shares: dict[str, pd.DataFrame]
    ) -> None:
        super().__init__()
        self.n_users = len(users)
        user_row = row_index(users[f.USER_ID])
        self.lead_group, self.matrix = {}, {}
        self.groups: dict[str, list[str]] = {}  # each share's groups, in column order
        for key, column in f.USER_SHARES.items():
            values = catalogue[column].astype(str)
            group_row = pd.Series(np.arange(values.nunique()), index=sorted(values.unique()))
            self.groups[key] = [str(g) for g in group_row.index]
            matrix = np.zeros((len(users) + 1, len(group_row)), np.float32)
            frame = shares.get(key)
            if frame is not None and len(frame):
                u = user_row.reindex(frame[f.USER_ID].astype(str)).to_numpy()
                g = group_row.reindex(frame[column].astype(str)).to_numpy()
                ok = np.isfinite(u) & np.isfinite(g)  # known users, groups in the catalogue
                matrix[u[ok].astype(np.int64), g[ok].astype(np.int64)] = frame[key].to_numpy(
                    np.float32
                )[ok]
            self.lead_group[key] = tf.constant(group_row.reindex(values).to_numpy(np.int64))
            self.matrix[key] = tf.constant(matrix)

    def lookup(self, user_rows: tf.Tensor, lead_rows: tf.Tensor) -> dict[str, tf.Tensor]:
        """The user shares of users ``user_rows`` (-1: unknown) x catalogue rows, float32."""
        u = tf.where(
            user_rows >= 0, user_rows, tf.fill(tf.shape(user_rows), np.int64(self.n_users))
        )
        out = {}
        for key in f.USER_SHARES:
            g = tf.gather(self.lead_group[key], lead_rows)
            out[key] = tf.gather_nd(self.matrix[key], tf.stack([u, g], axis=1))
        return out
