"""Canary rows the SavedModel carries: raw tf.Examples of catalogue x snapshot rows.

Kept in the model with the first snapshot user ids (`signatures.RecommenderExport`) for the
serving smoke check (`components/serving_smoke`) and the TF Serving warm-up requests
(`export.py`); `canary_examples` also builds ``serving_default`` inputs for any pairs.
"""

from __future__ import annotations

import pandas as pd
import tensorflow as tf

from components.trainer.snapshot_inputs import NO_USER, UNKNOWN_PRICE_BAND
from transforms import features as f

CANARY_ROWS = 8  # canary users and raw examples kept in the SavedModel for smoke checks


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
        row.setdefault(f.PRICE_BAND, UNKNOWN_PRICE_BAND)
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
