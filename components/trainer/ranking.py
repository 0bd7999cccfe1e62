"""`recommend`'s graph: retrieval over the catalogue, the shortlist, the full scorer, top K.

For each request row (`signatures.py` lists the steps in full):

1. retrieval: a known user's tower embedding dotted with every precomputed lead embedding
   (+ lead bias); an unknown user's fallback ``log1p(popularity) - 0.5 * log1p(km)``;
2. the shortlist: the best ``shortlist`` leads by that score and, for a known user with a
   location, the ``geo_shortlist`` leads nearest to it;
3. known users: the full model re-scores the shortlist from the precomputed lead-tower
   outputs and the user x lead crosses (`preprocessing.user_lead_crosses`), plus the
   sampling-bias correction (`sampling_correction.py`);
4. the top ``K`` columns, best first.

`Ranker.score_pairs` is the reference path for given (user, lead) pairs: the Transform graph
and the whole model on every pair, as ``serving_default`` runs them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import tensorflow as tf

from components.trainer import model as model_lib
from components.trainer import online_inputs
from components.trainer.online_inputs import OnlineInputs
from components.trainer.sampling_correction import SamplingCorrection
from components.trainer.snapshot_inputs import SnapshotInputs
from components.trainer.snapshot_tables import PairHistory, UserShares
from transforms import features as f
from transforms import geo, preprocessing

MAX_K = 100
GEO_SHORTLIST_BOOST = 1e4  # puts the nearest leads in the shortlist (known users only)
FALLBACK_DISTANCE_WEIGHT = 0.5
# Raw lead values the user x lead crosses need.
CROSS_LEAD_COLUMNS = (f.LEAD_LATITUDE, f.LEAD_LONGITUDE, f.PRICE)


def dense_float32(column: pd.Series) -> tuple[tf.Tensor, tf.Tensor]:
    """A numeric column as float32 constants: (value with 0 where missing, presence 0/1)."""
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float32, na_value=np.nan)
    ok = np.isfinite(values)
    return tf.constant(np.where(ok, values, 0.0).astype(np.float32)), tf.constant(
        ok.astype(np.float32)
    )


class Ranker(tf.Module):
    """The ranking graph over one catalogue and user snapshot."""

    def __init__(
        self,
        model: model_lib.Recommender,
        tft_layer: Any,
        inputs: SnapshotInputs,
        history: PairHistory,
        shares: UserShares,
        correction: SamplingCorrection,
        catalogue: pd.DataFrame,
        lead_popularity: np.ndarray,
    ) -> None:
        super().__init__()
        self.model = model
        self.tft_layer = tft_layer
        self.inputs = inputs
        self.history = history
        self.shares = shares
        self.correction = correction
        self.prior = tf.constant(np.log1p(lead_popularity), tf.float32)
        emb, bias = self._lead_embeddings()
        self.lead_embeddings = tf.constant(emb)
        self.lead_bias = tf.constant(bias)
        # Raw lead values the user x lead crosses need (dense float32 + presence mask).
        self.lead_cross_values = {key: dense_float32(catalogue[key]) for key in CROSS_LEAD_COLUMNS}
        # `recommend_online`: lead ids -> catalogue rows, share keys -> share columns.
        self.lead_rows = online_inputs.lead_row_table(catalogue[f.LEAD_ID].to_numpy())
        self.share_tables = {
            key: online_inputs.shares_table(key, shares.groups[key]) for key in f.USER_SHARES
        }

    def _lead_embeddings(self) -> tuple[np.ndarray, np.ndarray]:
        """Lead-tower outputs over the whole catalogue, computed once at export."""
        rows = tf.range(self.inputs.n_leads, dtype=tf.int64)
        raw = self.inputs.raw_batch(rows, self.inputs.empty_users(tf.size(rows)))
        t = self.tft_layer(raw)
        tower = self.model.lead_tower
        out = tower({k: t[k] for k in tower.input_names}, training=False)
        return out["embedding"].numpy(), out["bias"].numpy()

    def _shortlist_logits(
        self,
        u: tf.Tensor,
        user: dict,
        user_rows: tf.Tensor,
        short: tf.Tensor,
        online: OnlineInputs | None = None,
    ) -> tf.Tensor:
        """Final logits ``[B * S]`` for users ``u`` ``[B, D]`` (snapshot rows ``user_rows``)
        x catalogue rows ``short`` ``[B, S]``; the online pair history and shares over the
        snapshot's where ``online`` has them."""
        s = tf.shape(short)[1]
        rows = tf.reshape(short, [-1])
        pair_users, pair_leads = tf.repeat(user_rows, s), tf.cast(rows, tf.int64)
        history = self.history.events(pair_users, pair_leads)
        shares = self.shares.lookup(pair_users, pair_leads)
        if online is not None:
            history = online_inputs.pair_history(self.lead_rows, online, history, short)
            for key in f.USER_SHARES:
                shares[key] = online_inputs.pair_shares(
                    self.share_tables[key],
                    len(self.shares.groups[key]),
                    online,
                    tf.gather(self.shares.lead_group[key], rows),
                    shares[key],
                    s,
                )

        def lead(key):
            value, ok = self.lead_cross_values[key]
            return tf.gather(value, rows), tf.gather(ok, rows)

        def user_side(key):
            if key not in user:  # a data set without this user column: missing everywhere
                return tf.zeros_like(rows, tf.float32), tf.zeros_like(rows, tf.float32)
            value = tf.cast(user[key], tf.float32)
            ok = tf.cast(tf.math.is_finite(value), tf.float32)
            value = tf.where(ok > 0, value, tf.zeros_like(value))
            return tf.repeat(value, s), tf.repeat(ok, s)

        lat, _ = lead(f.LEAD_LATITUDE)
        lon, _ = lead(f.LEAD_LONGITUDE)
        price, price_ok = lead(f.PRICE)
        ulat, ulat_ok = user_side(f.USER_LATITUDE)
        ulon, ulon_ok = user_side(f.USER_LONGITUDE)
        uprice, uprice_ok = user_side(f.USER_MEDIAN_PRICE)
        crosses = preprocessing.user_lead_crosses(
            lat,
            lon,
            price,
            price_ok,
            ulat,
            ulon,
            ulat_ok * ulon_ok,
            uprice,
            uprice_ok,
            history,
            shares[f.USER_TYPE_SHARE],
            shares[f.USER_REGION_SHARE],
        )
        score, _ = self.model.logits(
            tf.repeat(u, s, axis=0),
            tf.gather(self.lead_embeddings, rows),
            tf.gather(self.lead_bias, rows),
            crosses,
        )
        return score + self.correction.log_propensity(pair_users, pair_leads)

    def recommend(
        self, user_id, latitude, longitude, k, online: OnlineInputs | None = None
    ) -> dict[str, tf.Tensor]:
        """The ``recommend`` outputs (lead ids and scores ``[B, K]``, best first; the shown
        leads' raw features, `features.RECOMMEND_OUTPUT_FEATURES`); with ``online``, the
        ``recommend_online`` ones (`online_inputs`)."""
        b = tf.size(user_id)
        user, known, user_rows = self.inputs.users(
            user_id, latitude, longitude, None if online is None else online.user
        )
        # 1. Retrieval scores over the whole catalogue.
        t_user = self.tft_layer(self.inputs.raw_batch(tf.zeros([b], tf.int64), user))
        tower = self.model.user_tower
        u = tower({key: t_user[key] for key in tower.input_names}, training=False)
        dot = tf.matmul(u, self.lead_embeddings, transpose_b=True) + self.lead_bias[None, :]
        lat = tf.cast(self.inputs.catalogue[f.LEAD_LATITUDE], tf.float32)[None, :]
        lon = tf.cast(self.inputs.catalogue[f.LEAD_LONGITUDE], tf.float32)[None, :]
        ulat = tf.cast(user[f.USER_LATITUDE], tf.float32)[:, None]
        ulon = tf.cast(user[f.USER_LONGITUDE], tf.float32)[:, None]
        km = geo.haversine_km(lat, lon, ulat, ulon)
        penalty = tf.where(tf.math.is_finite(km), tf.math.log1p(km), tf.zeros_like(km))
        fallback = self.prior[None, :] - FALLBACK_DISTANCE_WEIGHT * penalty
        retrieval = tf.where(known[:, None], dot, fallback)
        # 2. Shortlist: the best by retrieval score, and the nearest to a known user.
        cfg = self.model.cfg
        n_leads = self.inputs.n_leads
        s = min(cfg.shortlist + cfg.geo_shortlist, n_leads)
        g = min(cfg.geo_shortlist, n_leads)
        if g:
            finite = tf.math.is_finite(km)
            near_km = tf.where(finite, km, tf.fill(tf.shape(km), np.float32(np.inf)))
            kth = -tf.math.top_k(-near_km, k=g).values[:, -1:]
            near = (near_km <= kth) & finite & known[:, None]
            retrieval = tf.where(near, retrieval + GEO_SHORTLIST_BOOST, retrieval)
        if online is not None:  # leads the online store holds unavailable: last, score 0
            excluded = online_inputs.excluded_mask(self.lead_rows, online.excluded, n_leads)
            retrieval = tf.where(excluded, online_inputs.EXCLUDED_RETRIEVAL, retrieval)
        short_scores, short = tf.math.top_k(retrieval, k=s)
        # 3. Full scorer on the shortlist (B * S rows) from the precomputed lead-tower
        # outputs, with the sampling-bias correction.
        full = tf.reshape(self._shortlist_logits(u, user, user_rows, short, online), [b, s])
        scores = tf.sigmoid(tf.where(known[:, None], full, short_scores))
        if online is not None:
            scores = tf.where(tf.gather(excluded, short, batch_dims=1), 0.0, scores)
        # 4. Top K per row.
        top_k = tf.minimum(tf.reduce_max(tf.concat([k, [1]], axis=0)), min(s, MAX_K))
        best, order = tf.math.top_k(scores, k=top_k)
        rows = tf.gather(short, order, batch_dims=1)
        outputs = {
            f.RECOMMEND_OUTPUT_LEAD_IDS: tf.gather(self.inputs.lead_ids, rows),
            f.RECOMMEND_OUTPUT_SCORES: best,
        }
        # What the answer shows, feature by feature: the gateway logs it with the impression
        # for the skew and drift checks (float32 NaN where a value is unknown).
        for key, name in f.RECOMMEND_OUTPUT_FEATURES.items():
            values = tf.gather(self.inputs.catalogue[key], rows)
            outputs[name] = values if values.dtype == tf.string else tf.cast(values, tf.float32)
        return outputs

    def score_pairs(self, user_ids: np.ndarray, lead_rows: np.ndarray) -> np.ndarray:
        """`recommend`'s scores for users ``[B]`` x catalogue rows ``[B, C]`` (eager).

        The reference path (Transform over every pair, then the whole model, as
        ``serving_default``, then the sampling-bias correction); used by benchmarks that
        score given candidates (the sampled-negatives protocol).
        """
        b, c = lead_rows.shape
        nan = tf.fill([b], np.float32(np.nan))
        user, _, user_rows = self.inputs.users(tf.constant(user_ids, tf.string), nan, nan)
        tiled = {key: tf.repeat(v, c) for key, v in user.items()}
        rows = tf.constant(lead_rows.reshape(-1), tf.int64)
        history = self.history.events(tf.repeat(user_rows, c), rows)
        tiled[f.USER_LEAD_EVENTS] = tf.cast(history, tf.float64)
        for key, share in self.shares.lookup(tf.repeat(user_rows, c), rows).items():
            tiled[key] = tf.cast(share, tf.float64)
        t = self.tft_layer(self.inputs.raw_batch(rows, tiled))
        out = self.model({key: t[key] for key in t if key not in (f.T_LABEL, f.T_WEIGHT)})
        shift = self.correction.log_propensity(tf.repeat(user_rows, c), rows)
        logits = out[model_lib.SCORE][:, 0] + shift
        return tf.sigmoid(tf.reshape(logits, [b, c])).numpy()
