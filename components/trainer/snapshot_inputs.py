"""The catalogue and the user snapshot as raw Transform inputs, inside the exported graph.

`recommend` takes only user ids (and an optional request location): the lead and user columns
the Transform graph needs come from constants of the active catalogue and of the user
snapshot as of the training window's last day. `SnapshotInputs` holds them and builds raw
feature batches (`tf.io.parse_example`'s shapes: ``[M, 1]`` dense, sparse for
``VarLenFeature``) for any rows of the catalogue x users, with the fill values a served
example would carry.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import tensorflow as tf

from components.trainer import online_inputs
from transforms import features as f

NO_USER = "__no_user__"  # placeholder id for the user half of catalogue-only rows
UNKNOWN_PRICE_BAND = "unknown"  # what a served example without a price band carries


def event_timestamp(as_of: dt.date) -> float:
    """The event time a served request carries: the last second of the day ``as_of``."""
    return float(
        (dt.datetime.combine(as_of, dt.time()) - dt.datetime(1970, 1, 1)).total_seconds() + 86_399
    )


def column_constants(frame: pd.DataFrame, keys, spec: dict) -> dict[str, tf.Tensor]:
    """Columns as constants: strings for string features, float64 (NaN = missing) else."""
    out = {}
    for key in keys:
        col = frame[key]
        if spec[key].dtype == tf.string:
            out[key] = tf.constant(col.astype(str).to_numpy(), tf.string)
        else:
            values = pd.to_numeric(col, errors="coerce")
            out[key] = tf.constant(values.to_numpy(dtype=np.float64, na_value=np.nan))
    return out


class SnapshotInputs(tf.Module):
    """Catalogue and user-snapshot columns as constants, a user id -> row table, and the raw
    feature batches built from them."""

    def __init__(
        self, raw_spec: dict, catalogue: pd.DataFrame, users: pd.DataFrame, as_of: dt.date
    ) -> None:
        super().__init__()
        self.raw_spec = raw_spec
        self.event_ts = event_timestamp(as_of)
        self.lead_cols = [k for k in catalogue.columns if k in raw_spec]
        self.user_cols = [k for k in users.columns if k in raw_spec and k != f.USER_ID]
        self.n_leads = len(catalogue)
        self.lead_ids = tf.constant(catalogue[f.LEAD_ID].astype(str).to_numpy(), tf.string)
        self.catalogue = column_constants(catalogue, self.lead_cols, raw_spec)
        self.user_values = column_constants(users, self.user_cols, raw_spec)
        keys = tf.constant(users[f.USER_ID].astype(str).to_numpy(), tf.string)
        self.user_table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(keys, tf.range(len(users), dtype=tf.int64)),
            default_value=-1,
        )

    def raw_feature(self, key: str, values: tf.Tensor) -> tf.Tensor | tf.SparseTensor:
        """``values`` ``[M]`` as the raw feature ``key`` (non-finite numbers are missing)."""
        spec = self.raw_spec[key]
        if isinstance(spec, tf.io.FixedLenFeature):
            if values.dtype != tf.string:
                values = tf.where(tf.math.is_finite(values), values, tf.zeros_like(values))
            return tf.reshape(tf.cast(values, spec.dtype), [-1, 1])
        rows = tf.shape(values, out_type=tf.int64)[0]
        mask = (
            tf.ones_like(values, tf.bool)
            if values.dtype == tf.string
            else tf.math.is_finite(values)
        )
        where = tf.where(mask)
        indices = tf.concat([where, tf.zeros_like(where)], axis=1)
        kept = tf.cast(tf.boolean_mask(values, mask), spec.dtype)
        return tf.SparseTensor(indices, kept, tf.stack([rows, tf.constant(1, tf.int64)]))

    def raw_batch(self, lead_rows: tf.Tensor, user: dict[str, tf.Tensor]) -> dict:
        """Raw features for catalogue rows ``lead_rows`` [M] and user columns ``user`` [M]."""
        m = tf.shape(lead_rows)[0]
        raw: dict[str, tf.Tensor] = {}
        for key in self.lead_cols:
            raw[key] = self.raw_feature(key, tf.gather(self.catalogue[key], lead_rows))
        for key, values in user.items():
            raw[key] = self.raw_feature(key, values)
        raw[f.LEAD_ID] = tf.reshape(tf.gather(self.lead_ids, lead_rows), [-1, 1])
        fill = {f.EVENT_TIMESTAMP: self.event_ts, f.PRICE_BAND: UNKNOWN_PRICE_BAND}
        for key, spec in self.raw_spec.items():
            if key in raw:
                continue
            if spec.dtype == tf.string:
                value = tf.fill([m], fill.get(key, ""))
            else:
                value = tf.fill([m], tf.constant(fill.get(key, np.nan), tf.float64))
            raw[key] = self.raw_feature(key, value)
        return raw

    def empty_users(self, m: tf.Tensor) -> dict[str, tf.Tensor]:
        """User columns of ``m`` rows of no user: missing values, zero counts."""
        user = {k: tf.fill([m], tf.constant(np.nan, tf.float64)) for k in self.user_cols}
        counts = (f.USER_VIEWS, f.USER_CLICKS, f.USER_INQUIRIES, f.USER_PURCHASES)
        for k in counts:
            if k in user:
                user[k] = tf.zeros([m], tf.float64)
        user[f.USER_ID] = tf.fill([m], NO_USER)
        return user

    def users(
        self, user_id, latitude, longitude, online_user=None
    ) -> tuple[dict, tf.Tensor, tf.Tensor]:
        """Snapshot user features (the online store's over them when ``online_user`` is
        given, `online_inputs.override_users`; the request location over both), the mask
        of users the model ranks (in the snapshot, or with events online), snapshot row
        (-1)."""
        idx = self.user_table.lookup(user_id)
        known = idx >= 0
        safe = tf.maximum(idx, 0)
        empty = self.empty_users(tf.size(user_id))
        user = {}
        for k in self.user_cols:
            user[k] = tf.where(known, tf.gather(self.user_values[k], safe), empty[k])
        if online_user is not None:
            user = online_inputs.override_users(user, online_user)
            known = known | online_inputs.has_counts(online_user)
        req_lat = tf.cast(latitude, tf.float64)
        req_lon = tf.cast(longitude, tf.float64)
        has_loc = tf.math.is_finite(req_lat) & tf.math.is_finite(req_lon)
        user[f.USER_LATITUDE] = tf.where(has_loc, req_lat, user[f.USER_LATITUDE])
        user[f.USER_LONGITUDE] = tf.where(has_loc, req_lon, user[f.USER_LONGITUDE])
        user[f.USER_ID] = user_id
        return user, known, tf.where(known, idx, -tf.ones_like(idx))
