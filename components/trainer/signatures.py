"""The exported SavedModel: `serving_default` (tf.Example -> score) and `recommend` (top-k).

Both signatures take raw inputs and run the Transform graph inside (`tft_layer`), so
clients never compute features. `recommend` embeds, as constants, the active catalogue
and the user snapshot as of the training window's last day (`snapshots.py`, the same joins
as training), the lead-tower embeddings precomputed over the catalogue, and a popularity
prior per lead. For each request row:

1. known user: user-tower embedding, dot product with every lead embedding (+ lead bias);
   unknown user: the fallback ``log1p(popularity) - 0.5 * log1p(km to the request location)``
   (popularity alone without a location) — never an error;
2. the shortlist: the best ``shortlist`` leads by that score and, for a known user with a
   location, the ``geo_shortlist`` leads nearest to it (`model.ModelConfig`): the retrieval
   logit has no user-to-lead distance, which the full model weighs most;
3. known users: the full model re-scores the shortlist: the ranking head over the user
   embedding, the lead-tower outputs precomputed at export and the user x lead crosses
   (`preprocessing.user_lead_crosses`, the function the Transform graph uses; the user's
   past engagement with each lead comes from a pair table of the snapshot history);
   unknown users keep the fallback order;
4. known users: the sampling-bias correction (`sampling_prior.py`) adds ``w * log(N *
   p_negative)`` of each (user, lead) to the full model's logit (``w`` the
   ``sampling_prior_weight``, ``N`` the negatives per positive): the classifier learned
   engagement *against ExampleGen's negatives*, and ranking needs it against nothing.
   Scores are the sigmoid of the corrected logit: they rank, they are not calibrated
   probabilities; ``serving_default`` stays the classifier's probability;
5. ``K = min(max(k), shortlist + geo_shortlist, catalogue, MAX_K)`` columns (at least 1), best first.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from typing import Any

import numpy as np
import pandas as pd
import tensorflow as tf

from aiqleads.tf_serving_warmup import write_warmup_file
from components.trainer import model as model_lib
from components.trainer.sampling_prior import MIN_PROPENSITY, SamplingPrior
from transforms import features as f
from transforms import geo, preprocessing

MAX_K = 100
GEO_SHORTLIST_BOOST = 1e4  # puts the nearest leads in the shortlist (known users only)
FALLBACK_DISTANCE_WEIGHT = 0.5
NO_USER = "__no_user__"  # placeholder id for the user half of catalogue-only rows
CANARY_ROWS = 8  # canary users and raw examples kept in the SavedModel for smoke checks


def popularity(events: pd.DataFrame, lead_ids: np.ndarray) -> np.ndarray:
    """Engagement-weighted event count per lead of ``lead_ids`` (views 1 ... purchases 8)."""
    if events.empty:
        return np.zeros(len(lead_ids))
    w = events["event_type"].map(f.EVENT_WEIGHTS).fillna(0.0)
    per_lead = w.groupby(events["lead_id"]).sum()
    return per_lead.reindex(lead_ids).fillna(0.0).to_numpy(dtype=np.float64)


def _dense_float32(column: pd.Series) -> tuple[tf.Tensor, tf.Tensor]:
    """A numeric column as float32 constants: (value with 0 where missing, presence 0/1)."""
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float32, na_value=np.nan)
    ok = np.isfinite(values)
    return tf.constant(np.where(ok, values, 0.0).astype(np.float32)), tf.constant(
        ok.astype(np.float32)
    )


def _column_constants(frame: pd.DataFrame, keys, spec: dict) -> dict[str, tf.Tensor]:
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


def _row_index(ids: pd.Series) -> pd.Series:
    """Row number by id (as text): reindex it with ids to find their rows (NaN: absent)."""
    return pd.Series(np.arange(len(ids)), index=ids.astype(str).to_numpy())


def canary_examples(
    catalogue: pd.DataFrame,
    users: pd.DataFrame,
    spec: dict,
    event_ts: float,
    pairs: pd.DataFrame | None = None,
    shares: dict[str, pd.DataFrame] | None = None,
) -> list[bytes]:
    """Raw serialized tf.Examples pairing catalogue leads with snapshot users (or none),
    with the pair's ``user_lead_events`` from ``pairs`` (`snapshots.load_pair_history`) and
    the user shares from ``shares`` (`snapshots.load_user_shares`)."""
    history = {}
    if pairs is not None and len(pairs):
        history = pairs.set_index([f.USER_ID, f.LEAD_ID])[f.USER_LEAD_EVENTS].to_dict()
    by_group = {key: {} for key in f.USER_SHARES}
    for key, column in f.USER_SHARES.items():
        frame = (shares or {}).get(key)
        if frame is not None and len(frame):
            by_group[key] = frame.set_index([f.USER_ID, column])[key].to_dict()
    out = []
    for i in range(min(CANARY_ROWS, len(catalogue))):
        row = dict(catalogue.iloc[i])
        if len(users):
            row.update(dict(users.iloc[i % len(users)]))
        else:
            row[f.USER_ID] = NO_USER
        row[f.USER_LEAD_EVENTS] = history.get((row[f.USER_ID], row[f.LEAD_ID]), 0.0)
        for key, column in f.USER_SHARES.items():
            row[key] = by_group[key].get((row[f.USER_ID], str(row.get(column))), 0.0)
        row.setdefault(f.EVENT_TIMESTAMP, event_ts)
        row.setdefault(f.PRICE_BAND, "unknown")
        example = tf.train.Example()
        for key, fs in spec.items():
            value = row.get(key)
            if value is None or (not isinstance(value, str) and pd.isna(value)):
                if isinstance(fs, tf.io.FixedLenFeature):
                    value = "" if fs.dtype == tf.string else 0
                else:
                    continue
            feature = example.features.feature[key]
            if fs.dtype == tf.string:
                feature.bytes_list.value.append(str(value).encode())
            elif fs.dtype == tf.int64:
                feature.int64_list.value.append(int(value))
            else:
                feature.float_list.value.append(float(value))
        out.append(example.SerializeToString())
    return out


class RecommenderExport(tf.Module):
    """What `tf.saved_model.save` writes: model, Transform layer, snapshot constants."""

    def __init__(
        self,
        model: model_lib.Recommender,
        tft_output: Any,
        catalogue: pd.DataFrame,
        users: pd.DataFrame,
        lead_popularity: np.ndarray,
        as_of: dt.date,
        pairs: pd.DataFrame | None = None,
        sampling_prior: SamplingPrior | None = None,
        prior_weight: float = 1.0,
        shares: dict[str, pd.DataFrame] | None = None,
    ) -> None:
        super().__init__()
        if catalogue.empty:
            raise ValueError("the catalogue has no active lead: nothing to recommend")
        self.model = model
        self.tft_layer = tft_output.transform_features_layer()
        spec = dict(tft_output.raw_feature_spec())
        spec.pop(f.ENGAGEMENT, None)
        self._raw_spec = spec
        self._event_ts = float(
            (dt.datetime.combine(as_of, dt.time()) - dt.datetime(1970, 1, 1)).total_seconds()
            + 86_399
        )
        lead_cols = [k for k in catalogue.columns if k in spec]
        user_cols = [k for k in users.columns if k in spec and k != f.USER_ID]
        self._lead_cols, self._user_cols = lead_cols, user_cols
        self.lead_ids = tf.constant(catalogue[f.LEAD_ID].astype(str).to_numpy(), tf.string)
        self.catalogue = _column_constants(catalogue, lead_cols, spec)
        self.user_values = _column_constants(users, user_cols, spec)
        self.n_leads = len(catalogue)
        keys = tf.constant(users[f.USER_ID].astype(str).to_numpy(), tf.string)
        self.user_table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(keys, tf.range(len(users), dtype=tf.int64)),
            default_value=-1,
        )
        self.prior = tf.constant(np.log1p(lead_popularity), tf.float32)
        self.pair_table = self._pair_table(catalogue, users, pairs)
        self._set_shares(catalogue, users, shares or {})
        self._set_sampling_prior(sampling_prior, prior_weight)
        n_canary = min(CANARY_ROWS, len(users))
        canary_users = users[f.USER_ID].astype(str).to_numpy()[:n_canary]
        self.canary_user_ids = tf.Variable(canary_users, dtype=tf.string, trainable=False)
        self.canary_examples = tf.Variable(
            canary_examples(catalogue, users, spec, self._event_ts, pairs, shares),
            trainable=False,
        )
        emb, bias = self._lead_embeddings()
        self.lead_embeddings = tf.constant(emb)
        self.lead_bias = tf.constant(bias)
        # Raw lead values the user x lead crosses need (dense float32 + presence mask).
        self.lead_cross_values = {
            key: _dense_float32(catalogue[key])
            for key in (f.LEAD_LATITUDE, f.LEAD_LONGITUDE, f.PRICE)
        }

    def _pair_table(self, catalogue, users, pairs) -> tf.lookup.StaticHashTable:
        """``user_lead_events`` keyed by ``user_row * n_leads + lead_row`` (snapshot rows)."""
        keys, values = np.array([-1], np.int64), np.array([0.0], np.float32)  # never empty
        if pairs is not None and len(pairs):
            user_row = _row_index(users[f.USER_ID])
            lead_row = _row_index(catalogue[f.LEAD_ID])
            u = user_row.reindex(pairs[f.USER_ID].astype(str)).to_numpy()
            lead = lead_row.reindex(pairs[f.LEAD_ID].astype(str)).to_numpy()
            ok = np.isfinite(u) & np.isfinite(lead)  # active leads of known users only
            pair_keys = u[ok].astype(np.int64) * len(catalogue) + lead[ok].astype(np.int64)
            keys = np.concatenate([keys, pair_keys])
            values = np.concatenate([values, pairs[f.USER_LEAD_EVENTS].to_numpy(np.float32)[ok]])
        return tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(keys), tf.constant(values)),
            default_value=0.0,
        )

    def _set_shares(self, catalogue, users, shares: dict[str, pd.DataFrame]) -> None:
        """Each user share (`features.USER_SHARES`) as a dense (users + 1) x (the catalogue's
        values of the lead column it groups by) matrix; the last row, for unknown users, and
        groups a user never engaged with are 0."""
        self.n_users = len(users)
        user_row = _row_index(users[f.USER_ID])
        self.share_lead_group, self.share_matrix = {}, {}
        for key, column in f.USER_SHARES.items():
            values = catalogue[column].astype(str)
            group_row = pd.Series(np.arange(values.nunique()), index=sorted(values.unique()))
            matrix = np.zeros((len(users) + 1, len(group_row)), np.float32)
            frame = shares.get(key)
            if frame is not None and len(frame):
                u = user_row.reindex(frame[f.USER_ID].astype(str)).to_numpy()
                g = group_row.reindex(frame[column].astype(str)).to_numpy()
                ok = np.isfinite(u) & np.isfinite(g)  # known users, groups in the catalogue
                matrix[u[ok].astype(np.int64), g[ok].astype(np.int64)] = frame[key].to_numpy(
                    np.float32
                )[ok]
            self.share_lead_group[key] = tf.constant(group_row.reindex(values).to_numpy(np.int64))
            self.share_matrix[key] = tf.constant(matrix)

    def _shares(self, user_rows: tf.Tensor, lead_rows: tf.Tensor) -> dict[str, tf.Tensor]:
        """The user shares of users ``user_rows`` (-1: unknown) x catalogue rows, float32."""
        u = tf.where(
            user_rows >= 0, user_rows, tf.fill(tf.shape(user_rows), np.int64(self.n_users))
        )
        out = {}
        for key in f.USER_SHARES:
            g = tf.gather(self.share_lead_group[key], lead_rows)
            out[key] = tf.gather_nd(self.share_matrix[key], tf.stack([u, g], axis=1))
        return out

    def _set_sampling_prior(self, prior: SamplingPrior | None, weight: float) -> None:
        """Constants of the sampling-bias correction; none (a zero shift) without a prior."""
        self.corrected = prior is not None and weight > 0
        if not self.corrected:
            return
        self.neg_weight = float(weight)
        self.neg_lead_region = tf.constant(prior.lead_region, tf.int64)
        self.neg_region_rate = tf.constant(prior.region_rate, tf.float32)
        self.neg_popular = tf.constant(prior.popular, tf.float32)
        self.neg_regions = prior.n_regions
        self.neg_log_negatives = prior.log_negatives
        keys = np.concatenate([[-1], prior.share_keys()]).astype(np.int64)  # never empty
        values = np.concatenate([[0.0], prior.share]).astype(np.float32)
        self.neg_share_table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(keys), tf.constant(values)),
            default_value=0.0,
        )

    def _log_propensity(self, user_rows: tf.Tensor, lead_rows: tf.Tensor) -> tf.Tensor:
        """The logit shift: weight x (``log p_negative`` + ``log negatives_per_positive``)
        for users ``user_rows`` (-1: unknown) x catalogue rows, float32
        (`SamplingPrior.log_propensity`)."""
        if not self.corrected:
            return tf.zeros_like(lead_rows, tf.float32)
        region = tf.gather(self.neg_lead_region, lead_rows)
        share = self.neg_share_table.lookup(user_rows * self.neg_regions + region)
        share = tf.where(user_rows >= 0, share, tf.zeros_like(share))
        p = (
            tf.gather(self.neg_popular, lead_rows)
            + tf.gather(self.neg_region_rate, lead_rows) * share
        )
        log_p = tf.math.log(tf.maximum(p, MIN_PROPENSITY)) + self.neg_log_negatives
        return self.neg_weight * log_p

    def _pair_events(self, user_rows: tf.Tensor, lead_rows: tf.Tensor) -> tf.Tensor:
        """``user_lead_events`` of users ``user_rows`` (-1: unknown) x catalogue rows, float32."""
        keys = user_rows * self.n_leads + lead_rows
        found = self.pair_table.lookup(keys)
        return tf.where(user_rows >= 0, found, tf.zeros_like(found))

    # -- raw feature batches -------------------------------------------------------------

    def _raw_feature(self, key: str, values: tf.Tensor) -> tf.Tensor | tf.SparseTensor:
        spec = self._raw_spec[key]
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

    def _raw_batch(self, lead_rows: tf.Tensor, user: dict[str, tf.Tensor]) -> dict:
        """Raw features for catalogue rows ``lead_rows`` [M] and user columns ``user`` [M]."""
        m = tf.shape(lead_rows)[0]
        raw: dict[str, tf.Tensor] = {}
        for key in self._lead_cols:
            raw[key] = self._raw_feature(key, tf.gather(self.catalogue[key], lead_rows))
        for key, values in user.items():
            raw[key] = self._raw_feature(key, values)
        raw[f.LEAD_ID] = tf.reshape(tf.gather(self.lead_ids, lead_rows), [-1, 1])
        fill = {f.EVENT_TIMESTAMP: self._event_ts, f.PRICE_BAND: "unknown"}
        for key, spec in self._raw_spec.items():
            if key in raw:
                continue
            if spec.dtype == tf.string:
                value = tf.fill([m], fill.get(key, ""))
            else:
                value = tf.fill([m], tf.constant(fill.get(key, np.nan), tf.float64))
            raw[key] = self._raw_feature(key, value)
        return raw

    def _empty_users(self, m: tf.Tensor) -> dict[str, tf.Tensor]:
        user = {k: tf.fill([m], tf.constant(np.nan, tf.float64)) for k in self._user_cols}
        counts = (f.USER_VIEWS, f.USER_CLICKS, f.USER_INQUIRIES, f.USER_PURCHASES)
        for k in counts:
            if k in user:
                user[k] = tf.zeros([m], tf.float64)
        user[f.USER_ID] = tf.fill([m], NO_USER)
        return user

    def _lead_embeddings(self) -> tuple[np.ndarray, np.ndarray]:
        """Lead-tower outputs over the whole catalogue, computed once at export."""
        rows = tf.range(self.n_leads, dtype=tf.int64)
        t = self.tft_layer(self._raw_batch(rows, self._empty_users(tf.size(rows))))
        tower = self.model.lead_tower
        out = tower({k: t[k] for k in tower.input_names}, training=False)
        return out["embedding"].numpy(), out["bias"].numpy()

    def _users(self, user_id, latitude, longitude) -> tuple[dict, tf.Tensor, tf.Tensor]:
        """Snapshot user features (request location first), known mask, snapshot row (-1)."""
        idx = self.user_table.lookup(user_id)
        known = idx >= 0
        safe = tf.maximum(idx, 0)
        empty = self._empty_users(tf.size(user_id))
        user = {}
        for k in self._user_cols:
            user[k] = tf.where(known, tf.gather(self.user_values[k], safe), empty[k])
        req_lat = tf.cast(latitude, tf.float64)
        req_lon = tf.cast(longitude, tf.float64)
        has_loc = tf.math.is_finite(req_lat) & tf.math.is_finite(req_lon)
        user[f.USER_LATITUDE] = tf.where(has_loc, req_lat, user[f.USER_LATITUDE])
        user[f.USER_LONGITUDE] = tf.where(has_loc, req_lon, user[f.USER_LONGITUDE])
        user[f.USER_ID] = user_id
        return user, known, tf.where(known, idx, -tf.ones_like(idx))

    def _shortlist_logits(
        self, u: tf.Tensor, user: dict, user_rows: tf.Tensor, short: tf.Tensor
    ) -> tf.Tensor:
        """Final logits ``[B * S]`` for users ``u`` ``[B, D]`` (snapshot rows ``user_rows``)
        x catalogue rows ``short`` ``[B, S]``."""
        s = tf.shape(short)[1]
        rows = tf.reshape(short, [-1])
        pair_users, pair_leads = tf.repeat(user_rows, s), tf.cast(rows, tf.int64)
        history = self._pair_events(pair_users, pair_leads)
        shares = self._shares(pair_users, pair_leads)

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
        return score + self._log_propensity(pair_users, pair_leads)

    def score_pairs(self, user_ids: np.ndarray, lead_rows: np.ndarray) -> np.ndarray:
        """`recommend`'s scores for users ``[B]`` x catalogue rows ``[B, C]`` (eager).

        The reference path (Transform over every pair, then the whole model, as
        ``serving_default``, then the sampling-bias correction); used by benchmarks that
        score given candidates (the sampled-negatives protocol).
        """
        b, c = lead_rows.shape
        nan = tf.fill([b], np.float32(np.nan))
        user, _, user_rows = self._users(tf.constant(user_ids, tf.string), nan, nan)
        tiled = {key: tf.repeat(v, c) for key, v in user.items()}
        rows = tf.constant(lead_rows.reshape(-1), tf.int64)
        history = self._pair_events(tf.repeat(user_rows, c), rows)
        tiled[f.USER_LEAD_EVENTS] = tf.cast(history, tf.float64)
        for key, share in self._shares(tf.repeat(user_rows, c), rows).items():
            tiled[key] = tf.cast(share, tf.float64)
        t = self.tft_layer(self._raw_batch(rows, tiled))
        out = self.model({key: t[key] for key in t if key not in (f.T_LABEL, f.T_WEIGHT)})
        logits = out[model_lib.SCORE][:, 0] + self._log_propensity(tf.repeat(user_rows, c), rows)
        return tf.sigmoid(tf.reshape(logits, [b, c])).numpy()

    # -- signatures ----------------------------------------------------------------------

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_examples(self, examples: tf.Tensor) -> dict[str, tf.Tensor]:
        raw = tf.io.parse_example(examples, self._raw_spec)
        t = self.tft_layer(raw)
        out = self.model({k: t[k] for k in t if k not in (f.T_LABEL, f.T_WEIGHT)})
        return {"score": tf.sigmoid(out[model_lib.SCORE][:, 0])}

    @tf.function(
        input_signature=[
            tf.TensorSpec([None], tf.string, name=f.RECOMMEND_INPUT_USER_ID),
            tf.TensorSpec([None], tf.float32, name=f.RECOMMEND_INPUT_LATITUDE),
            tf.TensorSpec([None], tf.float32, name=f.RECOMMEND_INPUT_LONGITUDE),
            tf.TensorSpec([None], tf.int32, name=f.RECOMMEND_INPUT_K),
        ]
    )
    def recommend(self, user_id, latitude, longitude, k) -> dict[str, tf.Tensor]:
        b = tf.size(user_id)
        user, known, user_rows = self._users(user_id, latitude, longitude)
        # 1. Retrieval scores over the whole catalogue.
        t_user = self.tft_layer(self._raw_batch(tf.zeros([b], tf.int64), user))
        tower = self.model.user_tower
        u = tower({key: t_user[key] for key in tower.input_names}, training=False)
        dot = tf.matmul(u, self.lead_embeddings, transpose_b=True) + self.lead_bias[None, :]
        lat = tf.cast(self.catalogue[f.LEAD_LATITUDE], tf.float32)[None, :]
        lon = tf.cast(self.catalogue[f.LEAD_LONGITUDE], tf.float32)[None, :]
        ulat = tf.cast(user[f.USER_LATITUDE], tf.float32)[:, None]
        ulon = tf.cast(user[f.USER_LONGITUDE], tf.float32)[:, None]
        km = geo.haversine_km(lat, lon, ulat, ulon)
        penalty = tf.where(tf.math.is_finite(km), tf.math.log1p(km), tf.zeros_like(km))
        fallback = self.prior[None, :] - FALLBACK_DISTANCE_WEIGHT * penalty
        retrieval = tf.where(known[:, None], dot, fallback)
        # 2. Shortlist: the best by retrieval score, and the nearest to a known user.
        cfg = self.model.cfg
        s = min(cfg.shortlist + cfg.geo_shortlist, self.n_leads)
        g = min(cfg.geo_shortlist, self.n_leads)
        if g:
            finite = tf.math.is_finite(km)
            near_km = tf.where(finite, km, tf.fill(tf.shape(km), np.float32(np.inf)))
            kth = -tf.math.top_k(-near_km, k=g).values[:, -1:]
            near = (near_km <= kth) & finite & known[:, None]
            retrieval = tf.where(near, retrieval + GEO_SHORTLIST_BOOST, retrieval)
        short_scores, short = tf.math.top_k(retrieval, k=s)
        # 3-4. Full scorer on the shortlist (B * S rows) from the precomputed lead-tower
        # outputs, with the sampling-bias correction.
        full = tf.reshape(self._shortlist_logits(u, user, user_rows, short), [b, s])
        scores = tf.sigmoid(tf.where(known[:, None], full, short_scores))
        # 5. Top K per row.
        top_k = tf.minimum(tf.reduce_max(tf.concat([k, [1]], axis=0)), min(s, MAX_K))
        best, order = tf.math.top_k(scores, k=top_k)
        ids = tf.gather(self.lead_ids, tf.gather(short, order, batch_dims=1))
        return {f.RECOMMEND_OUTPUT_LEAD_IDS: ids, f.RECOMMEND_OUTPUT_SCORES: best}


def warmup_requests(module: RecommenderExport) -> list:
    """TF Serving warm-up requests: both signatures, one row and a batch, with and without
    a request location, so a server answers its first real request at full speed."""
    from tensorflow_serving.apis import predict_pb2

    def request(signature: str, inputs: dict[str, np.ndarray]):
        out = predict_pb2.PredictRequest()
        out.model_spec.signature_name = signature
        for key, value in inputs.items():
            out.inputs[key].CopyFrom(tf.make_tensor_proto(value))
        return out

    users = [u.decode() for u in module.canary_user_ids.numpy()] or [NO_USER]
    lat = float(module.catalogue[f.LEAD_LATITUDE][0].numpy())
    lon = float(module.catalogue[f.LEAD_LONGITUDE][0].numpy())
    out = []
    for batch, location in ((users[:1], None), (users[:1], (lat, lon)), (users, None)):
        n = len(batch)
        lats = np.full(n, np.nan if location is None else location[0], np.float32)
        lons = np.full(n, np.nan if location is None else location[1], np.float32)
        inputs = {
            f.RECOMMEND_INPUT_USER_ID: np.array(batch, dtype=object),
            f.RECOMMEND_INPUT_LATITUDE: lats,
            f.RECOMMEND_INPUT_LONGITUDE: lons,
            f.RECOMMEND_INPUT_K: np.full(n, 10, np.int32),
        }
        out.append(request(f.RECOMMEND_SIGNATURE, inputs))
    examples = module.canary_examples.numpy()
    out.append(request("serving_default", {"examples": np.array(list(examples), dtype=object)}))
    return out


def export(module: RecommenderExport, serving_model_dir: str) -> None:
    """Write the SavedModel with both signatures (``serving_default`` and ``recommend``)
    and its warm-up requests (``assets.extra/tf_serving_warmup_requests``)."""
    signatures = {
        "serving_default": module.serve_examples.get_concrete_function(),
        f.RECOMMEND_SIGNATURE: module.recommend.get_concrete_function(),
    }
    tf.saved_model.save(module, serving_model_dir, signatures=signatures)
    # Written locally, then copied: the model directory may be on a remote file system.
    with tempfile.TemporaryDirectory(prefix="aiqleads-warmup-") as tmp:
        local = write_warmup_file(tmp, warmup_requests(module))
        target = os.path.join(serving_model_dir, local.parent.name)
        tf.io.gfile.makedirs(target)
        tf.io.gfile.copy(str(local), os.path.join(target, local.name), overwrite=True)
