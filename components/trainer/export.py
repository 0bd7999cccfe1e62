"""Writing the SavedModel: its signatures, then TF Serving's warm-up requests beside them."""

from __future__ import annotations

import os
import tempfile

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2

from aiqleads.tf_serving_warmup import write_warmup_file
from components.trainer.signatures import EXAMPLES_INPUT, SERVING_DEFAULT, RecommenderExport
from components.trainer.snapshot_inputs import NO_USER
from transforms import features as f

WARMUP_K = 10  # leads the warm-up's `recommend` requests ask for


def _request(signature: str, inputs: dict[str, np.ndarray]) -> predict_pb2.PredictRequest:
    out = predict_pb2.PredictRequest()
    out.model_spec.signature_name = signature
    for key, value in inputs.items():
        out.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    return out


def warmup_requests(module: RecommenderExport) -> list[predict_pb2.PredictRequest]:
    """TF Serving warm-up requests: every signature; `recommend` with one row and a batch,
    with and without a request location; `recommend_online` with online features and
    without, so a server answers its first real request at full speed."""
    users = [u.decode() for u in module.canary_user_ids.numpy()] or [NO_USER]
    lat = float(module.inputs.catalogue[f.LEAD_LATITUDE][0].numpy())
    lon = float(module.inputs.catalogue[f.LEAD_LONGITUDE][0].numpy())
    out = []
    for batch, location in ((users[:1], None), (users[:1], (lat, lon)), (users, None)):
        n = len(batch)
        lats = np.full(n, np.nan if location is None else location[0], np.float32)
        lons = np.full(n, np.nan if location is None else location[1], np.float32)
        inputs = {
            f.RECOMMEND_INPUT_USER_ID: np.array(batch, dtype=object),
            f.RECOMMEND_INPUT_LATITUDE: lats,
            f.RECOMMEND_INPUT_LONGITUDE: lons,
            f.RECOMMEND_INPUT_K: np.full(n, WARMUP_K, np.int32),
        }
        out.append(_request(f.RECOMMEND_SIGNATURE, inputs))
    # `recommend_online`: a user with online features and an excluded lead, and an empty row.
    lead = module.inputs.lead_ids[0].numpy()
    group = module.ranker.shares.groups[f.USER_REGION_SHARE][0]
    online_user = np.full((2, len(f.ONLINE_USER_FEATURES)), np.nan, np.float32)
    online_user[0, : len(f.ONLINE_USER_COUNTS)] = (3, 1, 1, 0)
    online_user[0, -2:] = (lat, lon)
    inputs = {
        f.RECOMMEND_INPUT_USER_ID: np.array([users[0], NO_USER], dtype=object),
        f.RECOMMEND_INPUT_LATITUDE: np.full(2, np.nan, np.float32),
        f.RECOMMEND_INPUT_LONGITUDE: np.full(2, np.nan, np.float32),
        f.RECOMMEND_INPUT_K: np.full(2, WARMUP_K, np.int32),
        f.ONLINE_USER: online_user,
        f.ONLINE_SHARE_KEYS: np.array(
            [[f"{f.USER_REGION_SHARE}{f.SHARE_KEY_SEPARATOR}{group}"], [""]], dtype=object
        ),
        f.ONLINE_SHARE_VALUES: np.array([[1.0], [0.0]], np.float32),
        f.ONLINE_LEAD_IDS: np.array([[lead], [b""]], dtype=object),
        f.ONLINE_LEAD_EVENTS: np.array([[4.0], [0.0]], np.float32),
        f.EXCLUDED_LEAD_IDS: np.array([[lead], [b""]], dtype=object),
    }
    out.append(_request(f.RECOMMEND_ONLINE_SIGNATURE, inputs))
    names = np.array([f.RECOMMEND_ONLINE_SIGNATURE], dtype=object)
    out.append(_request(f.FEATURE_VIEWS_SIGNATURE, {f.FEATURE_VIEWS_INPUT: names}))
    examples = module.canary_examples.numpy()
    out.append(_request(SERVING_DEFAULT, {EXAMPLES_INPUT: np.array(list(examples), dtype=object)}))
    return out


def export(module: RecommenderExport, serving_model_dir: str) -> None:
    """Write the SavedModel with its signatures (``serving_default``, ``recommend``,
    ``recommend_online`` and ``feature_views``) and its warm-up requests
    (``assets.extra/tf_serving_warmup_requests``)."""
    signatures = {
        SERVING_DEFAULT: module.serve_examples.get_concrete_function(),
        f.RECOMMEND_SIGNATURE: module.recommend.get_concrete_function(),
        f.RECOMMEND_ONLINE_SIGNATURE: module.recommend_online.get_concrete_function(),
        f.FEATURE_VIEWS_SIGNATURE: module.feature_views.get_concrete_function(),
    }
    tf.saved_model.save(module, serving_model_dir, signatures=signatures)
    # Written locally, then copied: the model directory may be on a remote file system.
    with tempfile.TemporaryDirectory(prefix="aiqleads-warmup-") as tmp:
        local = write_warmup_file(tmp, warmup_requests(module))
        target = os.path.join(serving_model_dir, local.parent.name)
        tf.io.gfile.makedirs(target)
        tf.io.gfile.copy(str(local), os.path.join(target, local.name), overwrite=True)
