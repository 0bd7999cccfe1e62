"""SavedModel warm-up: replay `assets.extra/tf_serving_warmup_requests` before serving.

A version's first calls pay for lazy work (tracing, graph optimisation, allocation): seconds
for the recommender. As in TF Serving, a version that ships a warm-up file (a TFRecord file of
`PredictionLog` protos, `aiqleads.tf_serving_warmup`) has every record replayed on it at load
time, before it is AVAILABLE. The rules are TF Serving's: at most 1000 records (more fail the
load, INVALID_ARGUMENT), a record that fails fails the load with that record's status, a file
that is not TFRecord data fails with DATA_LOSS, `session_run_log` (and `predict_streamed_log`)
are UNIMPLEMENTED, a record with no log set is skipped. A version without the file loads as
before.
"""

from __future__ import annotations

import dataclasses
import logging
import pathlib
import time

import tensorflow as tf
from tensorflow_serving.apis import (
    classification_pb2,
    inference_pb2,
    prediction_log_pb2,
    regression_pb2,
)

from aiqleads.tf_serving_warmup import MAX_RECORDS, read_records, warmup_path
from serving.errors import Code, ServingError, invalid
from serving.model_server.inference import classify_on, predict_on, regress_on
from serving.model_server.servable import CLASSIFY_METHOD, REGRESS_METHOD, Servable

log = logging.getLogger("aiqleads.model_server")


@dataclasses.dataclass(frozen=True)
class WarmupOptions:
    """`--enable_model_warmup`, `--num_request_iterations_for_warmup` (0 means 1) and
    `--enable_signature_method_name_check` (records run as requests do)."""

    enabled: bool = True
    iterations: int = 1
    method_name_check: bool = False


@dataclasses.dataclass(frozen=True)
class WarmupResult:
    """What a warm-up did: records replayed, wall time, and its status code."""

    path: pathlib.Path
    records: int
    seconds: float
    code: Code = Code.OK


class WarmupError(ServingError):
    """The warm-up failed; the version must not become available. `result` says how far."""

    def __init__(self, code: Code, message: str, result: WarmupResult) -> None:
        super().__init__(code, message)
        self.result = result


def replay(
    servable: Servable,
    prediction_log: prediction_log_pb2.PredictionLog,
    method_name_check: bool = False,
) -> None:
    """Run one `PredictionLog`'s request on `servable` (its model name and version are
    ignored: the warm-up runs on the version being loaded, whatever the record names)."""
    kind = prediction_log.WhichOneof("log_type")
    if kind is None:
        return  # nothing to run, as TF Serving does
    if kind == "predict_log":
        predict_on(servable, prediction_log.predict_log.request, None, method_name_check)
    elif kind == "classify_log":
        classify_on(servable, prediction_log.classify_log.request, method_name_check)
    elif kind == "regress_log":
        regress_on(servable, prediction_log.regress_log.request, method_name_check)
    elif kind == "multi_inference_log":
        _multi_inference(servable, prediction_log.multi_inference_log.request, method_name_check)
    else:
        raise ServingError(Code.UNIMPLEMENTED, f"Unsupported log_type for warmup: {kind}")


def _multi_inference(
    servable: Servable,
    request: inference_pb2.MultiInferenceRequest,
    method_name_check: bool = False,
) -> None:
    """A MultiInference warm-up: each task as the Classify or Regress it stands for (its model
    name ignored, like every record's)."""
    if not request.tasks:
        raise invalid("Expected at least one task")
    for task in request.tasks:
        if task.method_name == CLASSIFY_METHOD:
            sub = classification_pb2.ClassificationRequest(input=request.input)
            sub.model_spec.CopyFrom(task.model_spec)
            classify_on(servable, sub, method_name_check)
        elif task.method_name == REGRESS_METHOD:
            sub = regression_pb2.RegressionRequest(input=request.input)
            sub.model_spec.CopyFrom(task.model_spec)
            regress_on(servable, sub, method_name_check)
        else:
            raise invalid(f"Unsupported signature method_name: {task.method_name}")


def run_warmup(
    servable: Servable, iterations: int = 1, method_name_check: bool = False
) -> WarmupResult | None:
    """Replay the servable's warm-up file `iterations` times per record.

    None when the version has no warm-up file; a `WarmupResult` on success; `WarmupError`
    (carrying the failing record's status code, the file named in the message) otherwise.
    """
    path = warmup_path(servable.export_dir)
    if not path.exists():
        return None
    started = time.monotonic()
    count = 0

    def fail(code: Code, message: str) -> WarmupError:
        result = WarmupResult(path, count, time.monotonic() - started, code)
        return WarmupError(code, f"Model warm-up from {path} failed: {message}", result)

    try:
        for record in read_records(path):
            if count >= MAX_RECORDS:
                raise fail(
                    Code.INVALID_ARGUMENT,
                    f"Number of warmup records exceeds the maximum ({MAX_RECORDS})",
                )
            entry = prediction_log_pb2.PredictionLog()
            try:
                entry.ParseFromString(record)
            except Exception as e:  # protobuf's DecodeError (its type depends on the backend)
                raise fail(
                    Code.INVALID_ARGUMENT, f"Failed to parse warmup record {count + 1}"
                ) from e
            for _ in range(iterations):
                try:
                    replay(servable, entry, method_name_check)
                except ServingError as e:
                    raise fail(e.code, f"record {count + 1}: {e.message}") from e
                except Exception as e:  # an unexpected TF or numpy error in this record
                    raise fail(Code.UNKNOWN, f"record {count + 1}: {e}") from e
            count += 1
    except tf.errors.DataLossError as e:
        raise fail(
            Code.DATA_LOSS,
            f"{e.message}. Please verify your warmup data is in TFRecord format.",
        ) from e
    except tf.errors.OpError as e:  # e.g. the file cannot be read
        raise fail(Code(e.error_code), e.message) from e
    result = WarmupResult(path, count, time.monotonic() - started)
    log.info(
        "Finished warm-up of servable {name: %s version: %d}: %d records (x%d) from %s in %.3fs",
        servable.name,
        servable.version,
        count,
        iterations,
        path,
        result.seconds,
    )
    return result
