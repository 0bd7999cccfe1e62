"""The servable per-region popularity ranks as `RegionalPopularity` does, through the
`recommend` signature the serving stack calls."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from components.baselines.popularity import RegionalPopularity
from components.baselines.popularity_export import export_popularity
from components.example_gen import raw_tables, snapshots
from transforms import features as f

AS_OF = dt.date(2026, 1, 14)  # the smoke preset's last span


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from aiqleads.data import synth

    root = tmp_path_factory.mktemp("popularity")
    data = root / "data"
    synth.generate(synth.preset("smoke"), data)
    path = export_popularity(data, AS_OF, 7, root / "models", version=3)
    return data, path


def test_recommend_ranks_like_the_offline_baseline(exported):
    import tensorflow as tf

    data, path = exported
    catalogue = snapshots.load_catalogue(data, AS_OF)
    days = raw_tables.spans_up_to(data, AS_OF)[-7:]
    offline = RegionalPopularity(
        catalogue[f.LEAD_ID].to_numpy(), catalogue[f.REGION].astype(str).to_numpy()
    ).fit(raw_tables.read_events(data, days))
    known = next(iter(offline.user_region))
    recommend = tf.saved_model.load(str(path)).signatures[f.RECOMMEND_SIGNATURE]
    out = recommend(
        user_id=tf.constant([known, "never-seen"]),
        latitude=tf.constant([np.nan, np.nan], tf.float32),
        longitude=tf.constant([np.nan, np.nan], tf.float32),
        k=tf.constant([5, 5], tf.int32),
    )
    ids = [[x.decode() for x in row] for row in out[f.RECOMMEND_OUTPUT_LEAD_IDS].numpy()]
    for row, user in zip(ids, (known, "never-seen"), strict=True):
        scores = offline.score(user)
        top = scores[np.argsort(-scores, kind="stable")[:5]]
        got = scores[[list(offline.lead_ids).index(lead) for lead in row]]
        assert np.allclose(np.sort(got)[::-1], top)  # the same top-5 scores (ties may swap)
    regions = [x.decode() for x in out[f.RECOMMEND_OUTPUT_FEATURES[f.REGION]].numpy()[0]]
    assert regions[0] == offline.user_region[known]  # the user's region first
