"""`run_fn` end to end on a small synthetic window: train, export, call both signatures.

The examples come from ExampleGen's own pure function and the Transform graph from
`local_transform` (the same `preprocessing_fn` Beam analysis as the Transform component).
"""

from __future__ import annotations

import datetime as dt
import math
import pathlib

import numpy as np
import pandas as pd
import pytest

from transforms import features as f

AS_OF_DAYS = 4
SHORTLIST, GEO_SHORTLIST = 4, 4
# Same-region and popularity-weighted negatives (not the uniform default), so the
# sampling-bias correction `recommend` adds is not flat and its test has a point.
SAMPLING = {"negatives_per_positive": 1, "hard_fraction": 0.5, "popularity_exponent": 1.0}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    import tensorflow as tf
    from tfx.components.trainer.fn_args_utils import FnArgs

    from aiqleads.data import synth
    from components.example_gen import executor, interactions
    from components.trainer import local_transform, run_fn

    root = tmp_path_factory.mktemp("run_fn")
    data = root / "data"
    cfg = synth.preset("smoke", users=40, leads=30, days=AS_OF_DAYS, events=500, seed=3)
    synth.generate(cfg, data)
    result = executor.generate(
        str(data),
        str(root / "examples"),
        window_spans=AS_OF_DAYS,
        eval_days=1,
        sampling=interactions.SamplingConfig(seed=1, **SAMPLING),
    )
    paths = local_transform.transform_splits(str(root / "examples"), str(root / "tft"))
    as_of = result.window[-1]
    fn_args = FnArgs(
        train_files=[paths["train"]],
        eval_files=[paths["eval"]],
        transform_output=paths["transform_graph"],
        serving_model_dir=str(root / "serving_model"),
        model_run_dir=str(root / "model_run"),
        train_steps=20,
        eval_steps=2,
        custom_config={
            "data_root": str(data),
            "as_of": as_of.isoformat(),
            "batch_size": 64,
            "sampling": {**SAMPLING, "window_spans": AS_OF_DAYS},
            # A shortlist smaller than the 30-lead catalogue, so its two sources matter.
            "shortlist": SHORTLIST,
            "geo_shortlist": GEO_SHORTLIST,
        },
    )
    run_fn.run_fn(fn_args)
    loaded = tf.saved_model.load(fn_args.serving_model_dir)
    return loaded, data, as_of, root


def test_saved_model_has_its_signatures(trained):
    loaded, *_ = trained
    assert set(loaded.signatures) == {
        "serving_default",
        f.RECOMMEND_SIGNATURE,
        f.RECOMMEND_ONLINE_SIGNATURE,
        f.FEATURE_VIEWS_SIGNATURE,
    }


def test_serving_default_scores_raw_examples(trained):
    import tensorflow as tf

    from components.example_gen import tf_examples

    loaded, _, _, root = trained
    files = tf.io.gfile.glob(str(root / "examples" / "Split-eval" / "*"))
    records = [r.numpy() for r in tf.data.TFRecordDataset(files, "GZIP").take(16)]
    out = loaded.signatures["serving_default"](examples=tf.constant(records))
    score = out["score"].numpy()
    assert score.shape == (len(records),)
    assert np.all((score > 0) & (score < 1))
    assert tf_examples.FILE_NAME  # the records are ExampleGen's own files


def test_recommend_returns_top_k_from_the_active_catalogue(trained):
    import tensorflow as tf

    from components.example_gen import snapshots

    loaded, data, as_of, _ = trained
    catalogue = snapshots.load_catalogue(data, as_of)
    users = snapshots.load_user_snapshot(data, as_of)
    known = users[f.USER_ID].iloc[0]
    rec = loaded.signatures[f.RECOMMEND_SIGNATURE]
    out = rec(
        user_id=tf.constant([known, "never-seen-user", "never-seen-user"]),
        latitude=tf.constant([math.nan, float(catalogue[f.LEAD_LATITUDE].iloc[0]), math.nan]),
        longitude=tf.constant([math.nan, float(catalogue[f.LEAD_LONGITUDE].iloc[0]), math.nan]),
        k=tf.constant([5, 3, 1], tf.int32),
    )
    ids = out[f.RECOMMEND_OUTPUT_LEAD_IDS].numpy()
    scores = out[f.RECOMMEND_OUTPUT_SCORES].numpy()
    assert ids.shape == scores.shape == (3, 5)  # max(k) columns
    active = set(catalogue[f.LEAD_ID])
    for row_ids, row_scores in zip(ids, scores, strict=True):
        assert {i.decode() for i in row_ids} <= active
        assert len(set(row_ids)) == len(row_ids)  # no duplicates
        assert np.all(np.diff(row_scores) <= 1e-7)  # descending
        assert np.all((row_scores > 0) & (row_scores < 1))
    # Each shown lead's raw features come with it, as the catalogue has them (for the log).
    by_id = catalogue.set_index(f.LEAD_ID)
    for key, name in f.RECOMMEND_OUTPUT_FEATURES.items():
        values = out[name].numpy()
        assert values.shape == ids.shape, name
        for lead, value in zip(ids.ravel(), values.ravel(), strict=True):
            want = by_id.loc[lead.decode(), key]
            if isinstance(value, bytes):
                assert value.decode() == want, (name, lead)
            elif pd.isna(want):
                assert np.isnan(value), (name, lead)
            else:
                assert value == pytest.approx(float(want), rel=1e-6), (name, lead)


def test_shortlist_holds_the_leads_nearest_to_a_known_users_location(trained):
    """The retrieval logit knows no distance: the shortlist adds the `geo_shortlist` leads
    nearest to the request location, so they are among the re-scored (and returned) ones."""
    import tensorflow as tf

    from components.example_gen import snapshots
    from transforms import geo

    loaded, data, as_of, _ = trained
    catalogue = snapshots.load_catalogue(data, as_of).reset_index(drop=True)
    users = snapshots.load_user_snapshot(data, as_of)
    size = SHORTLIST + GEO_SHORTLIST
    assert len(catalogue) >= 2 * size, "the catalogue must be larger than the shortlist"
    rec = loaded.signatures[f.RECOMMEND_SIGNATURE]
    lat = catalogue[f.LEAD_LATITUDE].to_numpy(np.float32)
    lon = catalogue[f.LEAD_LONGITUDE].to_numpy(np.float32)
    for probe in range(0, len(catalogue), 7):  # several places, each a lead's own spot
        out = rec(
            user_id=tf.constant([users[f.USER_ID].iloc[0]]),
            latitude=tf.constant([lat[probe]]),
            longitude=tf.constant([lon[probe]]),
            k=tf.constant([size], tf.int32),
        )
        ids = {i.decode() for i in out[f.RECOMMEND_OUTPUT_LEAD_IDS].numpy()[0]}
        assert len(ids) == size
        km = geo.haversine_km(lat, lon, lat[probe], lon[probe]).numpy()
        nearest = set(catalogue[f.LEAD_ID].to_numpy()[np.argsort(km, kind="stable")[:3]])
        assert nearest <= ids, (probe, nearest - ids)


def test_unknown_user_with_location_prefers_nearby_popular_leads(trained):
    """Fallback: log1p(popularity) - 0.5 log1p(km); the answer is computed by hand here."""
    import tensorflow as tf

    from components.example_gen import raw_tables, snapshots
    from components.trainer.snapshot_tables import popularity

    loaded, data, as_of, _ = trained
    catalogue = snapshots.load_catalogue(data, as_of)
    events = raw_tables.read_events(data, raw_tables.spans_up_to(data, as_of))
    prior = np.log1p(popularity(events, catalogue[f.LEAD_ID].to_numpy()))
    lat0, lon0 = (
        float(catalogue[f.LEAD_LATITUDE].iloc[7]),
        float(catalogue[f.LEAD_LONGITUDE].iloc[7]),
    )
    lat = np.radians(catalogue[f.LEAD_LATITUDE].to_numpy())
    lon = np.radians(catalogue[f.LEAD_LONGITUDE].to_numpy())
    a = (
        np.sin((lat - math.radians(lat0)) / 2) ** 2
        + np.cos(lat) * math.cos(math.radians(lat0)) * np.sin((lon - math.radians(lon0)) / 2) ** 2
    )
    km = 2 * 6371.0088 * np.arcsin(np.sqrt(a))
    expected = pd.Series(prior - 0.5 * np.log1p(km), index=catalogue[f.LEAD_ID])
    expected = expected.sort_values(ascending=False, kind="stable")
    out = loaded.signatures[f.RECOMMEND_SIGNATURE](
        user_id=tf.constant(["nobody"]),
        latitude=tf.constant([lat0], tf.float32),
        longitude=tf.constant([lon0], tf.float32),
        k=tf.constant([3], tf.int32),
    )
    got = [i.decode() for i in out[f.RECOMMEND_OUTPUT_LEAD_IDS].numpy()[0]]
    assert got[0] == expected.index[0]
    scores = out[f.RECOMMEND_OUTPUT_SCORES].numpy()[0]
    assert scores[0] == pytest.approx(1 / (1 + math.exp(-expected.iloc[0])), rel=1e-3)


def test_run_fn_rejects_missing_snapshot_config(tmp_path):
    from components.trainer import run_fn

    with pytest.raises(run_fn.TrainerConfigError, match="data_root"):
        run_fn.snapshot_day({"as_of": "2026-01-06"})
    with pytest.raises(run_fn.TrainerConfigError, match="YYYY-MM-DD"):
        run_fn.snapshot_day({"data_root": str(tmp_path), "as_of": "06/01/2026"})
    assert run_fn.snapshot_day({"data_root": str(tmp_path), "as_of": "2026-01-06"})[1] == dt.date(
        2026, 1, 6
    )
    # A run-time window ("" from a KFP package): the newest span present when the Trainer runs.
    tiny = pathlib.Path(__file__).resolve().parents[2] / "testdata" / "pipeline" / "tiny"
    assert run_fn.snapshot_day({"data_root": str(tiny), "as_of": ""})[1] == dt.date(2026, 1, 4)
    with pytest.raises(run_fn.TrainerConfigError, match="no span folders"):
        run_fn.snapshot_day({"data_root": str(tmp_path), "as_of": ""})


def test_serving_smoke_blesses_the_trained_model(trained):
    from components.serving_smoke import smoke

    *_, root = trained
    report = smoke.check_saved_model(
        str(root / "serving_model"), latency_budget_ms=10_000, latency_requests=10
    )
    assert report.passed, report.reasons
    assert report.canary_rows >= 3


def test_recommend_scores_equal_serving_default_on_the_same_pairs(trained):
    """`recommend` re-scores from precomputed lead-tower outputs and its own crosses (the
    pair history and the type share from its snapshot tables), then
    adds the sampling prior: the result must equal `serving_default` on tf.Examples of the
    same (user, lead) pairs, which run the Transform graph and the whole model, with the
    prior added to its logit by the NumPy reference (`SamplingPrior.log_propensity`)."""
    import tensorflow as tf
    import tensorflow_transform as tft

    from components.example_gen import interactions, raw_tables, snapshots
    from components.trainer.canaries import CANARY_ROWS, canary_examples
    from components.trainer.model import ModelConfig
    from components.trainer.sampling_prior import SamplingPrior

    loaded, data, as_of, root = trained
    catalogue = snapshots.load_catalogue(data, as_of)
    users = snapshots.load_user_snapshot(data, as_of)
    pairs = snapshots.load_pair_history(data, as_of)
    # A user with a known location and median price, so the crosses are not all neutral,
    # and the most history with active leads, so the pair feature is exercised too.
    has_both = users[f.USER_LATITUDE].notna() & users[f.USER_MEDIAN_PRICE].notna()
    active = pairs[pairs[f.LEAD_ID].isin(catalogue[f.LEAD_ID])]
    busiest = active.groupby(f.USER_ID).size().reindex(users[f.USER_ID]).fillna(0).to_numpy()
    user = users.iloc[[int(np.argmax(np.where(has_both, busiest, -1)))]]
    k = CANARY_ROWS
    out = loaded.signatures[f.RECOMMEND_SIGNATURE](
        user_id=tf.constant(user[f.USER_ID].to_numpy().astype(str)),
        latitude=tf.constant([math.nan]),
        longitude=tf.constant([math.nan]),
        k=tf.constant([k], tf.int32),
    )
    ids = [i.decode() for i in out[f.RECOMMEND_OUTPUT_LEAD_IDS].numpy()[0]]
    scores = out[f.RECOMMEND_OUTPUT_SCORES].numpy()[0]
    spec = dict(tft.TFTransformOutput(str(root / "tft" / "transform_graph")).raw_feature_spec())
    spec.pop(f.ENGAGEMENT)
    rows = catalogue.set_index(f.LEAD_ID).loc[ids].reset_index()
    shares = snapshots.load_user_shares(data, as_of)
    examples = canary_examples(rows, user, spec, event_ts=0.0, pairs=pairs, shares=shares)
    assert len(examples) == len(ids) == k
    for key, column in f.USER_SHARES.items():
        mine = shares[key][shares[key][f.USER_ID] == user[f.USER_ID].iloc[0]]
        groups = set(mine.loc[mine[key].between(0.01, 0.99), column])
        assert groups & set(rows[column]), f"no recommended {column} with a {key} in (0, 1)"
    seen = set(active[active[f.USER_ID] == user[f.USER_ID].iloc[0]][f.LEAD_ID])
    assert seen & set(ids), "no recommended lead with past engagement: the test lost its point"
    p = loaded.signatures["serving_default"](examples=tf.constant(examples))["score"].numpy()
    events = raw_tables.read_events(data, raw_tables.spans_up_to(data, as_of))
    prior = SamplingPrior.fit(events, catalogue, users, interactions.SamplingConfig(**SAMPLING))
    user_row = int(np.flatnonzero(users[f.USER_ID].to_numpy() == user[f.USER_ID].iloc[0])[0])
    lead_rows = catalogue.reset_index(drop=True).reset_index().set_index(f.LEAD_ID).loc[ids]
    shift = prior.log_propensity(np.full(k, user_row), lead_rows["index"].to_numpy())
    assert np.ptp(shift) > 0.01, "a flat prior would not test the correction"
    weight = ModelConfig.sampling_prior_weight  # the fixture trains with the default
    logit = np.log(p) - np.log1p(-p) + weight * (shift + prior.log_negatives)
    np.testing.assert_allclose(scores, 1 / (1 + np.exp(-logit)), rtol=2e-4, atol=1e-6)
    assert np.all(np.diff(scores) <= 0), "scores are not best first"


def test_export_ships_warmup_requests_the_model_server_replays(trained):
    """The SavedModel carries TF Serving warm-up requests for both signatures, and the model
    server replays them all successfully when it loads the version."""
    import pathlib

    from aiqleads.tf_serving_warmup import warmup_path
    from serving.model_server.servable import Servable
    from serving.model_server.warmup import run_warmup

    _, _, _, root = trained
    export_dir = pathlib.Path(root / "serving_model")
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    path = warmup_path(export_dir)
    names = []
    for record in tf.data.TFRecordDataset(str(path)):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        names.append(log.predict_log.request.model_spec.signature_name)
    assert sorted(names) == [
        f.FEATURE_VIEWS_SIGNATURE,
        "recommend",
        "recommend",
        "recommend",
        f.RECOMMEND_ONLINE_SIGNATURE,
        "serving_default",
    ]
    servable = Servable("lead_recommender", 1, export_dir)
    result = run_warmup(servable)
    assert result is not None and result.records == 6


# -- recommend_online: the online feature store's values over the embedded snapshot ---------


def _online_inputs(rows: int, **given):
    """`recommend_online`'s extra inputs for ``rows`` rows, empty unless ``given``."""
    import tensorflow as tf

    out = {
        f.ONLINE_USER: np.full((rows, len(f.ONLINE_USER_FEATURES)), np.nan, np.float32),
        f.ONLINE_SHARE_KEYS: np.full((rows, 0), b"", object),
        f.ONLINE_SHARE_VALUES: np.zeros((rows, 0), np.float32),
        f.ONLINE_LEAD_IDS: np.full((rows, 0), b"", object),
        f.ONLINE_LEAD_EVENTS: np.zeros((rows, 0), np.float32),
        f.EXCLUDED_LEAD_IDS: np.full((rows, 0), b"", object),
    }
    out.update(given)
    return {key: tf.constant(value) for key, value in out.items()}


def _base(user_ids, k, lat=None, lon=None):
    import tensorflow as tf

    n = len(user_ids)
    return {
        "user_id": tf.constant(user_ids),
        "latitude": tf.constant(np.full(n, np.nan, np.float32) if lat is None else lat),
        "longitude": tf.constant(np.full(n, np.nan, np.float32) if lon is None else lon),
        "k": tf.constant(np.full(n, k, np.int32)),
    }


def test_recommend_online_without_online_inputs_answers_as_recommend(trained):
    from components.example_gen import snapshots

    loaded, data, as_of, _ = trained
    users = snapshots.load_user_snapshot(data, as_of)[f.USER_ID].astype(str).tolist()[:3]
    base = _base([*users, "never-seen-user"], 6)
    plain = loaded.signatures[f.RECOMMEND_SIGNATURE](**base)
    online = loaded.signatures[f.RECOMMEND_ONLINE_SIGNATURE](**base, **_online_inputs(4))
    for name, value in plain.items():
        np.testing.assert_array_equal(online[name].numpy(), value.numpy(), err_msg=name)


def test_recommend_online_never_returns_an_excluded_lead(trained):
    from components.example_gen import snapshots

    loaded, data, as_of, _ = trained
    catalogue = snapshots.load_catalogue(data, as_of)
    user = snapshots.load_user_snapshot(data, as_of)[f.USER_ID].astype(str).iloc[0]
    k = SHORTLIST + GEO_SHORTLIST
    base = _base([user, "never-seen-user"], k)
    before = loaded.signatures[f.RECOMMEND_SIGNATURE](**base)[f.RECOMMEND_OUTPUT_LEAD_IDS]
    excluded = before.numpy()[:, :3]  # each row's top three, and an id of no lead
    excluded = np.concatenate([excluded, np.full((2, 1), b"no-such-lead", object)], axis=1)
    out = loaded.signatures[f.RECOMMEND_ONLINE_SIGNATURE](
        **base, **_online_inputs(2, **{f.EXCLUDED_LEAD_IDS: excluded})
    )
    ids = out[f.RECOMMEND_OUTPUT_LEAD_IDS].numpy()
    scores = out[f.RECOMMEND_OUTPUT_SCORES].numpy()
    assert ids.shape == (2, k) and len(catalogue) > k + 3
    for row, (row_ids, row_scores) in enumerate(zip(ids, scores, strict=True)):
        assert not set(row_ids) & set(excluded[row]), row
        assert np.all(row_scores > 0), "an excluded lead filled a place"


def test_recommend_online_scores_equal_serving_default_on_the_online_features(trained):
    """The online user features, shares and pair history reach the full model as they
    would in tf.Examples carrying them: `recommend_online`'s scores equal `serving_default`
    on those examples plus the sampling prior (NumPy reference), for a user the snapshot
    knows (its features overridden) and for one it does not (ranked by the model now)."""
    import tensorflow as tf
    import tensorflow_transform as tft

    from components.example_gen import interactions, raw_tables, snapshots
    from components.trainer.canaries import CANARY_ROWS, canary_examples
    from components.trainer.model import ModelConfig
    from components.trainer.sampling_prior import SamplingPrior

    loaded, data, as_of, root = trained
    catalogue = snapshots.load_catalogue(data, as_of).reset_index(drop=True)
    users = snapshots.load_user_snapshot(data, as_of)
    spec = dict(tft.TFTransformOutput(str(root / "tft" / "transform_graph")).raw_feature_spec())
    spec.pop(f.ENGAGEMENT)
    events = raw_tables.read_events(data, raw_tables.spans_up_to(data, as_of))
    prior = SamplingPrior.fit(events, catalogue, users, interactions.SamplingConfig(**SAMPLING))
    weight = ModelConfig.sampling_prior_weight
    # Three inquiries on three condos (or whatever type the first leads are) of one region.
    region = catalogue[f.REGION].value_counts().index[0]
    mine = catalogue[catalogue[f.REGION] == region].iloc[:3]
    ptype = mine[f.PROPERTY_TYPE].iloc[0]
    lat, lon = mine[f.LEAD_LATITUDE].mean(), mine[f.LEAD_LONGITUDE].mean()
    online_values = {
        f.USER_VIEWS: 5.0,
        f.USER_CLICKS: 2.0,
        f.USER_INQUIRIES: 3.0,
        f.USER_PURCHASES: 0.0,
        f.USER_DAYS_SINCE_LAST: 0.01,
        f.USER_MEDIAN_PRICE: float(mine[f.PRICE].median()),
        f.USER_LATITUDE: lat,
        f.USER_LONGITUDE: lon,
    }
    online_user = np.array([[online_values[key] for key in f.ONLINE_USER_FEATURES]], np.float32)
    type_share = float((mine[f.PROPERTY_TYPE] == ptype).mean())
    share_keys = np.array(
        [[f"{f.USER_TYPE_SHARE}={ptype}", f"{f.USER_REGION_SHARE}={region}"]], dtype=object
    )
    share_values = np.array([[type_share, 1.0]], np.float32)
    lead_ids = mine[f.LEAD_ID].to_numpy().astype(object)[None, :]
    lead_events = np.full((1, 3), 4.0, np.float32)
    known_user = str(users[f.USER_ID].iloc[0])
    for user_id, user_row in ((known_user, 0), ("brand-new-user", -1)):
        out = loaded.signatures[f.RECOMMEND_ONLINE_SIGNATURE](
            **_base([user_id], CANARY_ROWS),
            **_online_inputs(
                1,
                **{
                    f.ONLINE_USER: online_user,
                    f.ONLINE_SHARE_KEYS: share_keys,
                    f.ONLINE_SHARE_VALUES: share_values,
                    f.ONLINE_LEAD_IDS: lead_ids,
                    f.ONLINE_LEAD_EVENTS: lead_events,
                },
            ),
        )
        ids = [i.decode() for i in out[f.RECOMMEND_OUTPUT_LEAD_IDS].numpy()[0]]
        scores = out[f.RECOMMEND_OUTPUT_SCORES].numpy()[0]
        # The same user and pairs as tf.Examples (the frames canary_examples reads).
        user = pd.DataFrame([{f.USER_ID: user_id, **online_values}])
        pairs = pd.DataFrame(
            {f.USER_ID: user_id, f.LEAD_ID: mine[f.LEAD_ID], f.USER_LEAD_EVENTS: 4.0}
        )
        shares = {
            f.USER_TYPE_SHARE: pd.DataFrame(
                {f.USER_ID: [user_id], f.PROPERTY_TYPE: [ptype], f.USER_TYPE_SHARE: [type_share]}
            ),
            f.USER_REGION_SHARE: pd.DataFrame(
                {f.USER_ID: [user_id], f.REGION: [region], f.USER_REGION_SHARE: [1.0]}
            ),
        }
        rows = catalogue.set_index(f.LEAD_ID).loc[ids].reset_index()
        examples = canary_examples(rows, user, spec, event_ts=0.0, pairs=pairs, shares=shares)
        assert set(ids) & set(mine[f.LEAD_ID]), "no inquired lead among the best: no point"
        p = loaded.signatures["serving_default"](examples=tf.constant(examples))["score"].numpy()
        lead_rows = catalogue.reset_index().set_index(f.LEAD_ID).loc[ids, "index"].to_numpy()
        shift = prior.log_propensity(np.full(len(ids), user_row), lead_rows)
        logit = np.log(p) - np.log1p(-p) + weight * (shift + prior.log_negatives)
        np.testing.assert_allclose(
            scores, 1 / (1 + np.exp(-logit)), rtol=2e-4, atol=1e-6, err_msg=user_id
        )


def test_feature_views_names_the_trained_versions_and_the_catalogue(trained):
    import tensorflow as tf

    from aiqleads.features.definitions import REGISTRY
    from components.example_gen import snapshots

    loaded, data, as_of, _ = trained
    out = loaded.signatures[f.FEATURE_VIEWS_SIGNATURE](model=tf.constant(["any"]))
    views = [v.decode() for v in out[f.FEATURE_VIEWS_OUTPUT_NAMES].numpy()]
    versions = out[f.FEATURE_VIEWS_OUTPUT_VERSIONS].numpy().tolist()
    assert dict(zip(views, versions, strict=True)) == REGISTRY.model_versions()
    catalogue = [i.decode() for i in out[f.FEATURE_VIEWS_OUTPUT_CATALOGUE].numpy()]
    assert catalogue == snapshots.load_catalogue(data, as_of)[f.LEAD_ID].astype(str).tolist()
