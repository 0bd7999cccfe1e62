"""Per-region popularity as a servable model: the `recommend` signature over the catalogue.

The online counterpart of `popularity.RegionalPopularity`: the same ranking (leads of the
user's region first, by engagement-weighted events; users without history get the global
ranking), exported as a SavedModel with the trained model's `recommend` inputs and outputs,
so the serving stack answers with it exactly as it answers with the trained model. The
online-quality benchmark serves both to the same simulated users.
"""

from __future__ import annotations

import datetime as dt
import pathlib

import numpy as np
import tensorflow as tf

from components.baselines.popularity import RegionalPopularity
from components.example_gen import raw_tables, snapshots
from transforms import features as f
from transforms.recommend_signature import RECOMMEND_INPUT_SPECS

MAX_K = 100


class PopularityRecommender(tf.Module):
    """`recommend(user_id, latitude, longitude, k)` by per-region popularity (location unused)."""

    def __init__(self, ranking: RegionalPopularity, catalogue) -> None:
        super().__init__()
        regions = sorted(set(ranking.lead_regions.tolist()))
        region_index = {r: i for i, r in enumerate(regions)}
        self.lead_ids = tf.constant(ranking.lead_ids.astype(str))
        self.lead_region = tf.constant([region_index[r] for r in ranking.lead_regions], tf.int64)
        self.popularity = tf.constant(ranking.scores, tf.float32)
        self.boost = tf.constant(float(ranking.scores.max()) + 1.0, tf.float32)
        users = [u for u, r in ranking.user_region.items() if r in region_index]
        self.user_region = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(users, tf.string),
                tf.constant([region_index[ranking.user_region[u]] for u in users], tf.int64),
            ),
            default_value=-1,
        )
        self.features = {
            name: tf.constant(catalogue[key].astype(str).to_numpy())
            if catalogue[key].dtype == object
            else tf.constant(catalogue[key].to_numpy(dtype=np.float32, na_value=np.nan))
            for key, name in f.RECOMMEND_OUTPUT_FEATURES.items()
        }
        self.n_leads = len(ranking.lead_ids)

    @tf.function(input_signature=RECOMMEND_INPUT_SPECS)
    def recommend(self, user_id, latitude, longitude, k):
        region = self.user_region.lookup(user_id)  # [B], -1: no history
        same = tf.equal(self.lead_region[None, :], region[:, None])
        scores = self.popularity[None, :] + tf.cast(same, tf.float32) * self.boost
        top = tf.minimum(tf.reduce_max(tf.concat([k, [1]], axis=0)), min(self.n_leads, MAX_K))
        best, rows = tf.math.top_k(scores, k=top)
        out = {
            f.RECOMMEND_OUTPUT_LEAD_IDS: tf.gather(self.lead_ids, rows),
            f.RECOMMEND_OUTPUT_SCORES: best,
        }
        for name, values in self.features.items():
            out[name] = tf.gather(values, rows)
        return out


def export_popularity(
    data_root: pathlib.Path, as_of: dt.date, window_days: int, base_path: pathlib.Path, version: int
) -> pathlib.Path:
    """Fit on the ``window_days`` spans ending ``as_of``; save ``<base_path>/<version>/``."""
    days = raw_tables.spans_up_to(data_root, as_of)[-window_days:]
    catalogue = snapshots.load_catalogue(data_root, as_of)
    ranking = RegionalPopularity(
        catalogue[f.LEAD_ID].to_numpy(), catalogue[f.REGION].astype(str).to_numpy()
    ).fit(raw_tables.read_events(data_root, days))
    module = PopularityRecommender(ranking, catalogue)
    out = pathlib.Path(base_path) / str(version)
    tf.saved_model.save(module, str(out), signatures={f.RECOMMEND_SIGNATURE: module.recommend})
    return out
