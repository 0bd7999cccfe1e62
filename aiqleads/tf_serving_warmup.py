"""TF Serving's SavedModel warm-up file: ``assets.extra/tf_serving_warmup_requests``.

The file is TFRecord data, one serialized `tensorflow_serving.apis.PredictionLog` per request;
a model server replays every record on a version at load time, before it serves the version
(at most `MAX_RECORDS` of them). The Trainer writes it into each exported SavedModel
(`write_warmup_file`); the model server reads it back (`read_records`) and replays it.
"""

from __future__ import annotations

import os
import pathlib
import tempfile
from collections.abc import Iterator, Sequence

import tensorflow as tf
from google.protobuf.message import Message
from tensorflow_serving.apis import prediction_log_pb2

from aiqleads.errors import DataError

ASSETS_EXTRA = "assets.extra"
WARMUP_FILE = "tf_serving_warmup_requests"
MAX_RECORDS = 1000  # TF Serving's WarmupConsts::kMaxNumRecords

# The `PredictionLog` field that carries each kind of request.
_LOG_FIELD = {
    "PredictRequest": "predict_log",
    "ClassificationRequest": "classify_log",
    "RegressionRequest": "regress_log",
    "MultiInferenceRequest": "multi_inference_log",
}


class WarmupRequestsError(DataError):
    """Warm-up requests that cannot be written (wrong type, none, too many, no model)."""


def warmup_path(export_dir: pathlib.Path | str) -> pathlib.Path:
    """Where a SavedModel's warm-up requests live."""
    return pathlib.Path(export_dir) / ASSETS_EXTRA / WARMUP_FILE


def read_records(path: pathlib.Path | str) -> Iterator[bytes]:
    """The raw records of a warm-up file, lazily (each a serialized `PredictionLog`).

    Raises TensorFlow's errors as it reads: `tf.errors.DataLossError` for data that is not
    TFRecord, another `tf.errors.OpError` when the file cannot be read.
    """
    records: Iterator[bytes] = tf.data.TFRecordDataset(str(path)).as_numpy_iterator()
    return records


def write_warmup_file(export_dir: pathlib.Path | str, requests: Sequence[Message]) -> pathlib.Path:
    """Write `requests` (`predict_pb2.PredictRequest`s; Classification, Regression and
    MultiInference requests work too) as the SavedModel's warm-up file; returns its path.

    The file is written beside and renamed into place, so a server polling the model never
    reads half of it. Raises `WarmupRequestsError` for bad arguments.
    """
    export_dir = pathlib.Path(export_dir)
    if not export_dir.is_dir():
        raise WarmupRequestsError(f"SavedModel directory {export_dir} does not exist")
    requests = list(requests)
    if not requests:
        raise WarmupRequestsError("no warm-up requests given: pass at least one")
    if len(requests) > MAX_RECORDS:
        raise WarmupRequestsError(
            f"{len(requests)} warm-up requests; a model server accepts at most {MAX_RECORDS}"
        )
    logs = []
    for i, request in enumerate(requests):
        field = _LOG_FIELD.get(type(request).__name__)
        if field is None or not type(request).__module__.startswith("tensorflow_serving."):
            raise WarmupRequestsError(
                f"warm-up request {i} is a {type(request).__name__}; expected a "
                "tensorflow_serving.apis PredictRequest"
            )
        entry = prediction_log_pb2.PredictionLog()
        getattr(entry, field).request.CopyFrom(request)
        logs.append(entry.SerializeToString())
    path = warmup_path(export_dir)
    path.parent.mkdir(exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{WARMUP_FILE}.", dir=path.parent)
    os.close(fd)
    try:
        with tf.io.TFRecordWriter(tmp) as writer:
            for record in logs:
                writer.write(record)
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise
    return path
