"""Encode example rows as tf.Example protos and write gzipped TFRecord splits."""

from __future__ import annotations

import math
import os

import numpy as np
import pandas as pd
import tensorflow as tf

from transforms import features as f

INT_FEATURES = (
    f.ENGAGEMENT,
    f.EVENT_TIMESTAMP,
    f.BEDROOMS,
    f.USER_VIEWS,
    f.USER_CLICKS,
    f.USER_INQUIRIES,
    f.USER_PURCHASES,
)
BYTES_FEATURES = (f.USER_ID, f.LEAD_ID, f.REGION, f.PROPERTY_TYPE, f.PRICE_BAND)
FLOAT_FEATURES = (
    f.LEAD_LATITUDE,
    f.LEAD_LONGITUDE,
    f.PRICE,
    f.BATHROOMS,
    f.LIVING_AREA,
    f.LEAD_AGE_DAYS,
    f.USER_LATITUDE,
    f.USER_LONGITUDE,
    f.USER_DAYS_SINCE_LAST,
    f.USER_MEDIAN_PRICE,
    f.USER_LEAD_EVENTS,
    f.USER_TYPE_SHARE,
    f.USER_REGION_SHARE,
    f.MARKET_DEMAND,
    f.MARKET_MEDIAN_PRICE,
    f.MARKET_INVENTORY,
    f.MARKET_PRICE_TREND,
)
ALL_FEATURES = INT_FEATURES + BYTES_FEATURES + FLOAT_FEATURES
FILE_NAME = "data_tfrecord-00000-of-00001.gz"


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def encode(frame: pd.DataFrame) -> list[bytes]:
    """Serialized tf.Examples, one per row; missing (NaN/None) values are left out."""
    columns = {}
    for key in ALL_FEATURES:
        if key not in frame.columns:
            raise KeyError(f"example frame lacks feature {key!r}")
        columns[key] = frame[key].to_numpy(dtype=object)
    out = []
    for i in range(len(frame)):
        example = tf.train.Example()
        feature = example.features.feature
        for key in INT_FEATURES:
            value = columns[key][i]
            if not _missing(value):
                feature[key].int64_list.value.append(int(value))
        for key in BYTES_FEATURES:
            value = columns[key][i]
            if not _missing(value):
                feature[key].bytes_list.value.append(str(value).encode())
        for key in FLOAT_FEATURES:
            value = columns[key][i]
            if not _missing(value) and np.isfinite(value):
                feature[key].float_list.value.append(float(value))
        out.append(example.SerializeToString(deterministic=True))  # map keys sorted
    return out


def write_split(records: list[bytes], split_dir: str) -> str:
    """Write ``records`` to ``split_dir`` as one gzipped TFRecord file; return its path."""
    tf.io.gfile.makedirs(split_dir)
    path = os.path.join(split_dir, FILE_NAME)
    options = tf.io.TFRecordOptions(compression_type="GZIP")
    with tf.io.TFRecordWriter(path, options) as writer:
        for record in records:
            writer.write(record)
    return path
