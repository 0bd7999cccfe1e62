"""Per-region popularity as a servable SavedModel, with the recommender's two signatures.

The offline gate is calibrated on it (TFMA scores ``serving_default`` on the eval split, as
it scores a trained model), and the A/B tests serve it as a deliberately weaker version
(``recommend``, the model servers' and the gateways' contract). No training: the scores are
`RegionalPopularity`'s, fitted on the events up to ``as_of``.

- ``serving_default(examples: string[B]) -> {score: float[B]}``: raw tf.Examples (only
  ``user_id`` and ``lead_id`` are read);
- ``recommend(user_id, latitude, longitude, k) -> {lead_ids, scores, <raw lead features>}``
  over the catalogue active at the end of ``as_of``, ``K = min(max(k), catalogue, 100)``.

Scores are ``(popularity + boost * same region) / (2 * max + 1)`` in [0, 1), the ranking of
`RegionalPopularity.score`; the location is ignored. ``regional=False`` drops the region
boost: global popularity, the same list for everyone (what the model answers a user it has
never seen without a location), a deliberately weak version for A/B tests.
"""

from __future__ import annotations

import datetime as dt
import pathlib
from collections.abc import Collection

import numpy as np
import pandas as pd
import tensorflow as tf

from aiqleads import contracts as c
from components.baselines.popularity import RegionalPopularity
from components.example_gen import raw_tables, snapshots
from transforms import features as f
from transforms.recommend_signature import RECOMMEND_INPUT_SPECS

MAX_K = 100
_STRING_OUTPUTS = (f.REGION, f.PROPERTY_TYPE)


class _PopularityModule(tf.Module):
    def __init__(
        self,
        model: RegionalPopularity,
        all_leads: pd.DataFrame,
        catalogue: pd.DataFrame,
        regional: bool = True,
    ) -> None:
        super().__init__()
        scale = 2.0 * float(model.scores.max(initial=0.0)) + 1.0
        boost = (float(model.scores.max(initial=0.0)) + 1.0) if regional else 0.0
        pop = pd.Series(model.scores, index=model.lead_ids)
        all_ids = all_leads[c.LEAD_ID].astype(str).to_numpy()
        self._scale = tf.constant(scale, tf.float32)
        self._boost = tf.constant(boost, tf.float32)
        self._lead_pop = _table(all_ids, pop.reindex(all_ids).fillna(0.0).to_numpy(np.float32))
        self._lead_region = _table(all_ids, all_leads[c.REGION].astype(str).to_numpy(), "")
        users = np.array(sorted(model.user_region), dtype=object)
        self._user_region = _table(
            users.astype(str), np.array([model.user_region[u] for u in users], dtype=str), ""
        )
        cat_ids = catalogue[f.LEAD_ID].astype(str).to_numpy()
        self._ids = tf.constant(cat_ids)
        self._pop = tf.constant(pop.reindex(cat_ids).fillna(0.0).to_numpy(np.float32))
        self._regions = tf.constant(catalogue[f.REGION].astype(str).to_numpy())
        self._features = {}
        for key, name in f.RECOMMEND_OUTPUT_FEATURES.items():
            column = catalogue[key]
            if key in _STRING_OUTPUTS:
                values = tf.constant(column.astype(str).to_numpy())
            else:
                values = tf.constant(column.astype(float).to_numpy(np.float32))
            self._features[name] = values

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serving_default(self, examples: tf.Tensor) -> dict[str, tf.Tensor]:
        parsed = tf.io.parse_example(
            examples,
            {
                f.USER_ID: tf.io.FixedLenFeature([], tf.string, default_value=""),
                f.LEAD_ID: tf.io.FixedLenFeature([], tf.string, default_value=""),
            },
        )
        pop = self._lead_pop.lookup(parsed[f.LEAD_ID])
        user_region = self._user_region.lookup(parsed[f.USER_ID])
        lead_region = self._lead_region.lookup(parsed[f.LEAD_ID])
        same = tf.cast(tf.logical_and(user_region != "", user_region == lead_region), tf.float32)
        return {"score": (pop + self._boost * same) / self._scale}

    @tf.function(input_signature=RECOMMEND_INPUT_SPECS)
    def recommend(
        self, user_id: tf.Tensor, latitude: tf.Tensor, longitude: tf.Tensor, k: tf.Tensor
    ) -> dict[str, tf.Tensor]:
        del latitude, longitude  # popularity does not look at the location
        user_region = self._user_region.lookup(user_id)
        same = tf.logical_and(
            user_region[:, None] != "", user_region[:, None] == self._regions[None, :]
        )
        scores = (self._pop[None, :] + self._boost * tf.cast(same, tf.float32)) / self._scale
        top = tf.minimum(tf.minimum(tf.reduce_max(k), tf.size(self._ids)), MAX_K)
        best = tf.math.top_k(scores, k=top, sorted=True)
        out = {
            f.RECOMMEND_OUTPUT_LEAD_IDS: tf.gather(self._ids, best.indices),
            f.RECOMMEND_OUTPUT_SCORES: best.values,
        }
        for name, values in self._features.items():
            out[name] = tf.gather(values, best.indices)
        return out


def _table(keys: np.ndarray, values: np.ndarray, default: object = 0.0):
    init = tf.lookup.KeyValueTensorInitializer(tf.constant(keys, tf.string), tf.constant(values))
    return tf.lookup.StaticHashTable(init, default_value=default)


def export_popularity(
    data_root: str | pathlib.Path,
    as_of: dt.date,
    export_dir: str | pathlib.Path,
    regional: bool = True,
    regions: Collection[str] | None = None,
) -> pathlib.Path:
    """Fit per-region popularity on the events up to ``as_of`` and save it to ``export_dir``
    (``<base>/<version>`` for a model server). Returns the directory. ``regions`` keeps only
    the catalogue's leads of those regions: a version that lost the rest of its catalogue,
    a clearly worse one for A/B tests."""
    catalogue = snapshots.load_catalogue(data_root, as_of)
    if regions is not None:
        catalogue = catalogue[catalogue[f.REGION].astype(str).isin(set(regions))]
        if catalogue.empty:
            raise ValueError(f"no lead of the catalogue is in the regions {sorted(regions)}")
    all_leads = raw_tables.read_leads(data_root)
    events = raw_tables.read_events(data_root, raw_tables.spans_up_to(data_root, as_of))
    model = RegionalPopularity(all_leads[c.LEAD_ID].to_numpy(), all_leads[c.REGION].to_numpy()).fit(
        events
    )
    module = _PopularityModule(model, all_leads, catalogue, regional)
    export_dir = pathlib.Path(export_dir)
    tf.saved_model.save(
        module,
        str(export_dir),
        signatures={
            "serving_default": module.serving_default,
            f.RECOMMEND_SIGNATURE: module.recommend,
        },
    )
    return export_dir
