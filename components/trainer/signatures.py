"""The exported SavedModel: `serving_default` (tf.Example -> score) and `recommend` (top-k).

Both signatures take raw inputs and run the Transform graph inside (`tft_layer`), so
clients never compute features. `recommend` embeds, as constants, the active catalogue
and the user snapshot as of the training window's last day (`snapshots.py`, the same joins
as training; `snapshot_inputs.py`, `snapshot_tables.py`), the lead-tower embeddings
precomputed over the catalogue, and a popularity prior per lead. For each request row
(`ranking.py`):

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
4. known users: the sampling-bias correction (`sampling_correction.py`) adds ``w * log(N *
   p_negative)`` of each (user, lead) to the full model's logit (``w`` the
   ``sampling_prior_weight``, ``N`` the negatives per positive): the classifier learned
   engagement *against ExampleGen's negatives*, and ranking needs it against nothing.
   Scores are the sigmoid of the corrected logit: they rank, they are not calibrated
   probabilities; ``serving_default`` stays the classifier's probability;
5. ``K = min(max(k), shortlist + geo_shortlist, catalogue, MAX_K)`` columns (at least 1), best first.

`recommend_online` takes the same four inputs and what the online feature store holds now
(`online_inputs`): the user's features over the snapshot's, and leads left out (sold,
pending, withdrawn). A row without online inputs gets `recommend`'s answer. `recommend` stays
as it was, for clients that send only its four inputs. `feature_views` names the feature view
versions the model was trained on and the leads it ranks, for the gateway.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
import tensorflow as tf

from aiqleads.features.definitions import REGISTRY
from components.trainer import model as model_lib
from components.trainer.canaries import CANARY_ROWS, canary_examples
from components.trainer.online_inputs import OnlineInputs
from components.trainer.ranking import Ranker
from components.trainer.sampling_correction import SamplingCorrection
from components.trainer.sampling_prior import SamplingPrior
from components.trainer.snapshot_inputs import SnapshotInputs
from components.trainer.snapshot_tables import PairHistory, UserShares
from transforms import features as f
from transforms.recommend_signature import RECOMMEND_INPUT_SPECS

SERVING_DEFAULT = tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY
EXAMPLES_INPUT = "examples"  # `serving_default`'s input: serialized raw tf.Examples
SCORE_OUTPUT = "score"  # `serving_default`'s output: the classifier's probability


class RecommenderExport(tf.Module):
    """What `tf.saved_model.save` writes: model, Transform layer, snapshot constants, the
    ranking graph, canaries, and the two signatures (`export.export` saves it)."""

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
        feature_views: dict[str, int] | None = None,
    ) -> None:
        super().__init__()
        if catalogue.empty:
            raise ValueError("the catalogue has no active lead: nothing to recommend")
        self.model = model
        self.tft_layer = tft_output.transform_features_layer()
        spec = dict(tft_output.raw_feature_spec())
        spec.pop(f.ENGAGEMENT, None)
        self._raw_spec = spec
        self.inputs = SnapshotInputs(spec, catalogue, users, as_of)
        self.ranker = Ranker(
            model,
            self.tft_layer,
            self.inputs,
            PairHistory(catalogue, users, pairs),
            UserShares(catalogue, users, shares or {}),
            SamplingCorrection(sampling_prior, prior_weight),
            catalogue,
            lead_popularity,
        )
        n_canary = min(CANARY_ROWS, len(users))
        canary_users = users[f.USER_ID].astype(str).to_numpy()[:n_canary]
        self.canary_user_ids = tf.Variable(canary_users, dtype=tf.string, trainable=False)
        self.canary_examples = tf.Variable(
            canary_examples(catalogue, users, spec, self.inputs.event_ts, pairs, shares),
            trainable=False,
        )
        # The feature view versions the model was trained on (the online store must serve
        # them: the gateway checks), served by `feature_views` with the catalogue.
        views = sorted((feature_views or REGISTRY.model_versions()).items())
        self.feature_view_names = tf.constant([name for name, _ in views], tf.string)
        self.feature_view_versions = tf.constant([v for _, v in views], tf.int64)

    @property
    def n_leads(self) -> int:
        """Leads of the active catalogue `recommend` ranks."""
        return self.inputs.n_leads

    def score_pairs(self, user_ids: np.ndarray, lead_rows: np.ndarray) -> np.ndarray:
        """`recommend`'s scores for users ``[B]`` x catalogue rows ``[B, C]`` by the
        reference path (`Ranker.score_pairs`), eager."""
        return self.ranker.score_pairs(user_ids, lead_rows)

    # -- signatures ----------------------------------------------------------------------

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=EXAMPLES_INPUT)])
    def serve_examples(self, examples: tf.Tensor) -> dict[str, tf.Tensor]:
        raw = tf.io.parse_example(examples, self._raw_spec)
        t = self.tft_layer(raw)
        out = self.model({k: t[k] for k in t if k not in (f.T_LABEL, f.T_WEIGHT)})
        return {SCORE_OUTPUT: tf.sigmoid(out[model_lib.SCORE][:, 0])}

    @tf.function(input_signature=RECOMMEND_INPUT_SPECS)
    def recommend(self, user_id, latitude, longitude, k) -> dict[str, tf.Tensor]:
        return self.ranker.recommend(user_id, latitude, longitude, k)

    @tf.function(
        input_signature=[
            *RECOMMEND_INPUT_SPECS,
            tf.TensorSpec([None, len(f.ONLINE_USER_FEATURES)], tf.float32, name=f.ONLINE_USER),
            tf.TensorSpec([None, None], tf.string, name=f.ONLINE_SHARE_KEYS),
            tf.TensorSpec([None, None], tf.float32, name=f.ONLINE_SHARE_VALUES),
            tf.TensorSpec([None, None], tf.string, name=f.ONLINE_LEAD_IDS),
            tf.TensorSpec([None, None], tf.float32, name=f.ONLINE_LEAD_EVENTS),
            tf.TensorSpec([None, None], tf.string, name=f.EXCLUDED_LEAD_IDS),
        ]
    )
    def recommend_online(
        self,
        user_id,
        latitude,
        longitude,
        k,
        online_user,
        online_share_keys,
        online_share_values,
        online_lead_ids,
        online_lead_events,
        excluded_lead_ids,
    ) -> dict[str, tf.Tensor]:
        online = OnlineInputs(
            online_user,
            online_share_keys,
            online_share_values,
            online_lead_ids,
            online_lead_events,
            excluded_lead_ids,
        )
        return self.ranker.recommend(user_id, latitude, longitude, k, online)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=f.FEATURE_VIEWS_INPUT)])
    def feature_views(self, model) -> dict[str, tf.Tensor]:
        del model  # the answer is the model's, whatever is asked
        return {
            f.FEATURE_VIEWS_OUTPUT_NAMES: tf.identity(self.feature_view_names),
            f.FEATURE_VIEWS_OUTPUT_VERSIONS: tf.identity(self.feature_view_versions),
            f.FEATURE_VIEWS_OUTPUT_CATALOGUE: tf.identity(self.inputs.lead_ids),
        }
