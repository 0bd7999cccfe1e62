"""`recommend_online`'s extra inputs in the graph: the online store's user features over the
snapshot, and the leads left out.

Per request row (docs/feature_store.md, "The model's inputs"):

- ``online_user`` (``features.ONLINE_USER_FEATURES``): a finite value replaces the
  snapshot's; NaN keeps it. A row with any event count is a user the model ranks (its
  snapshot row, or the out-of-vocabulary user id for a user the snapshot lacks);
- ``online_share_keys`` / ``online_share_values``: when the row has any key, the user's
  shares are these (``user_type_share=condo`` ...; groups not given are 0), not the
  snapshot's;
- ``online_lead_ids`` / ``online_lead_events``: likewise for ``user_lead_events``;
- ``excluded_lead_ids``: those catalogue leads are never shortlisted, and score 0 should
  the shortlist run out of others.

Rows whose online inputs are all empty are answered exactly as ``recommend`` answers them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from transforms import features as f

EXCLUDED_RETRIEVAL = -1e9  # below any retrieval score, geo boost included


@dataclass(frozen=True)
class OnlineInputs:
    user: tf.Tensor  # float32 [B, len(ONLINE_USER_FEATURES)]
    share_keys: tf.Tensor  # string [B, S]
    share_values: tf.Tensor  # float32 [B, S]
    lead_ids: tf.Tensor  # string [B, H]
    lead_events: tf.Tensor  # float32 [B, H]
    excluded: tf.Tensor  # string [B, E]

    @classmethod
    def empty(cls, b: tf.Tensor) -> OnlineInputs:
        """No online features for ``b`` rows (what `recommend` sends)."""
        nan = tf.fill([b, len(f.ONLINE_USER_FEATURES)], np.float32(np.nan))
        strings = tf.fill([b, 0], "")
        floats = tf.zeros([b, 0], tf.float32)
        return cls(nan, strings, floats, strings, floats, strings)


def lead_row_table(lead_ids: np.ndarray) -> tf.lookup.StaticHashTable:
    """Lead id -> catalogue row (-1: not in the catalogue)."""
    return tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(lead_ids.astype(str), tf.string),
            tf.range(len(lead_ids), dtype=tf.int64),
        ),
        default_value=-1,
    )


def has_counts(online_user: tf.Tensor) -> tf.Tensor:
    """[B] bool: the row carries a positive event count (a user with history online)."""
    counts = online_user[:, : len(f.ONLINE_USER_COUNTS)]
    present = tf.where(tf.math.is_finite(counts), counts, tf.zeros_like(counts))
    return tf.reduce_sum(present, axis=1) > 0


def override_users(user: dict, online_user: tf.Tensor) -> dict:
    """Snapshot user columns with the finite online values in their place."""
    out = dict(user)
    for i, key in enumerate(f.ONLINE_USER_FEATURES):
        if key not in out:
            continue
        value = tf.cast(online_user[:, i], out[key].dtype)
        out[key] = tf.where(tf.math.is_finite(value), value, out[key])
    return out


def excluded_mask(lead_rows: tf.lookup.StaticHashTable, excluded: tf.Tensor, n: int) -> tf.Tensor:
    """[B, n] bool: the catalogue rows of ``excluded`` (ids not in the catalogue ignored)."""
    rows = lead_rows.lookup(excluded)  # [B, E]
    b = tf.shape(excluded, out_type=tf.int64)[0]
    batch = tf.broadcast_to(tf.range(b)[:, None], tf.shape(rows, out_type=tf.int64))
    valid = rows >= 0
    indices = tf.stack([tf.boolean_mask(batch, valid), tf.boolean_mask(rows, valid)], axis=1)
    hits = tf.scatter_nd(indices, tf.ones(tf.shape(indices)[:1], tf.int32), tf.stack([b, n]))
    return hits > 0


def pair_history(
    lead_rows: tf.lookup.StaticHashTable,
    online: OnlineInputs,
    snapshot: tf.Tensor,
    short: tf.Tensor,
) -> tf.Tensor:
    """``user_lead_events`` of the shortlist ``short`` [B, S] (flattened, [B * S]): the
    online values where the row has any, else ``snapshot`` [B * S]."""
    rows = lead_rows.lookup(online.lead_ids)  # [B, H]
    match = tf.equal(tf.cast(short, tf.int64)[:, :, None], rows[:, None, :])  # [B, S, H]
    values = tf.reduce_sum(
        tf.where(match, online.lead_events[:, None, :], tf.zeros_like(match, tf.float32)), axis=2
    )
    has = tf.reduce_any(tf.not_equal(online.lead_ids, ""), axis=1)  # [B]
    s = tf.shape(short)[1]
    return tf.where(tf.repeat(has, s), tf.reshape(values, [-1]), snapshot)


def shares_table(share_key: str, groups: list[str]) -> tf.lookup.StaticHashTable:
    """``<share_key>=<group>`` -> the group's column in `snapshot_tables.UserShares`
    (-1: another share's key, or a group the catalogue lacks)."""
    keys = [f"{share_key}{f.SHARE_KEY_SEPARATOR}{g}" for g in groups]
    return tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(keys, tf.string), tf.range(len(keys), dtype=tf.int64)
        ),
        default_value=-1,
    )


def pair_shares(
    table: tf.lookup.StaticHashTable,
    n_groups: int,
    online: OnlineInputs,
    lead_groups: tf.Tensor,
    snapshot: tf.Tensor,
    s: tf.Tensor,
) -> tf.Tensor:
    """One user share of the shortlist's pairs ([B * S], lead group columns ``lead_groups``):
    the online shares where the row has any share key, else ``snapshot``."""
    columns = table.lookup(online.share_keys)  # [B, K], -1 for other shares' keys
    dense = tf.reduce_sum(
        tf.one_hot(columns, n_groups, dtype=tf.float32) * online.share_values[:, :, None], axis=1
    )  # [B, G]
    users = tf.repeat(tf.range(tf.shape(dense)[0]), s)
    values = tf.gather_nd(dense, tf.stack([users, tf.cast(lead_groups, tf.int32)], axis=1))
    has = tf.reduce_any(tf.not_equal(online.share_keys, ""), axis=1)
    return tf.where(tf.repeat(has, s), values, snapshot)
