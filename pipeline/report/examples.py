"""A split of an Examples artifact as a frame of raw features, parsed with the run's schema.

Records are parsed in batches by ``tf.io.parse_example`` with the feature spec of the
run's schema (the curated one ImportSchemaGen imported): a missing value is NaN in a numeric
column and None in a text column. The serialized records are kept too, in file order, for
scoring them with the models' ``serving_default`` signature.
"""

from __future__ import annotations

import dataclasses
import glob
import os
from typing import Any

import numpy as np
import pandas as pd
import tensorflow as tf
import tensorflow_data_validation as tfdv
from numpy.typing import NDArray
from tensorflow_metadata.proto.v0 import schema_pb2
from tensorflow_transform.tf_metadata import schema_utils
from tfx.utils import io_utils

SPLIT_DIR = "Split-{split}"
BATCH = 4096


@dataclasses.dataclass(frozen=True)
class Split:
    """One split's records (serialized tf.Examples) and their raw features, row for row."""

    records: list[bytes]
    frame: pd.DataFrame


def load_schema(schema_uri: str) -> schema_pb2.Schema:
    """The schema file inside a Schema artifact's folder."""
    return tfdv.load_schema_text(io_utils.get_only_uri_in_dir(schema_uri))


def _column(value: tf.Tensor | tf.SparseTensor, rows: int) -> NDArray[Any]:
    """The first value of each row: text decoded, numbers as parsed; where a row has no
    value, None (text, integers) or NaN (floats)."""
    if isinstance(value, tf.SparseTensor):
        indices, values = value.indices.numpy(), value.values.numpy()
        first = indices[:, 1] == 0
        column = np.full(rows, None, dtype=object)
        column[indices[first, 0]] = values[first]
        if value.dtype.is_floating:
            return np.array([np.nan if v is None else float(v) for v in column], dtype=float)
        if value.dtype.is_integer:
            return column if any(v is None for v in column) else column.astype(np.int64)
    else:
        column = np.asarray(value.numpy()).reshape(rows, -1)[:, 0]
        if value.dtype.is_floating:
            return column.astype(float)
        if value.dtype.is_integer:
            return column.astype(np.int64)
    return np.array([v.decode() if isinstance(v, bytes) else None for v in column], dtype=object)


def read_split(examples_uri: str, split: str, schema: schema_pb2.Schema) -> Split:
    """Every record of ``split`` (gzipped TFRecords under ``Split-<split>/``)."""
    files = sorted(glob.glob(os.path.join(examples_uri, SPLIT_DIR.format(split=split), "*")))
    spec = schema_utils.schema_as_feature_spec(schema).feature_spec
    records: list[bytes] = []
    parts: list[pd.DataFrame] = []
    if files:
        dataset = tf.data.TFRecordDataset(files, compression_type="GZIP").batch(BATCH)
        for batch in dataset:
            parsed = tf.io.parse_example(batch, spec)
            rows = int(batch.shape[0])
            parts.append(pd.DataFrame({k: _column(v, rows) for k, v in parsed.items()}))
            records.extend(batch.numpy().tolist())
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(spec))
    return Split(records, frame)
