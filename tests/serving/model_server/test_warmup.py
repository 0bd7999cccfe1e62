"""SavedModel warm-up: records replayed at load time, failures keep a version out of service.

The main model is a tiny TF2 SavedModel built here whose `serving_default` counts the rows it
has seen (`seen` = rows so far, this call included), so the first request after a load shows
exactly how many warm-up rows ran on that very servable. TF Serving's TF1 half_plus_two
(from the shared test data) covers the classify, regress and multi-inference records.
"""

from __future__ import annotations

import logging
import pathlib
import shutil

import numpy as np
import pytest

from aiqleads.tf_serving_warmup import (
    MAX_RECORDS,
    WarmupRequestsError,
    warmup_path,
    write_warmup_file,
)
from serving.errors import Code
from serving.model_server.manager import AVAILABLE, END, ModelManager, retired_versions
from serving.model_server.warmup import WarmupOptions

HALF_PLUS_TWO = "saved_model_half_plus_two_cpu/00000123"  # in TF Serving's test data
MODEL = "m"


# ---- helpers ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def row_counter(tmp_path_factory) -> pathlib.Path:
    """A TF2 SavedModel: serving_default(x: float[None]) -> seen: int64[None], rows so far."""
    import tensorflow as tf

    class RowCounter(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rows = tf.Variable(0, dtype=tf.int64)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
        def count(self, x):
            seen = self.rows.assign_add(tf.size(x, out_type=tf.int64))
            return {"seen": tf.fill(tf.shape(x), seen)}

    path = tmp_path_factory.mktemp("row_counter") / "model"
    module = RowCounter()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.count})
    return path


def predict_request(rows: int, signature: str = ""):
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "whatever: warm-up ignores the name"
    request.model_spec.signature_name = signature
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.arange(rows, dtype=np.float32)))
    return request


def add_version(base: pathlib.Path, model: pathlib.Path, version: int, requests=()) -> None:
    """Copy `model` to `base/<version>` (staged, then renamed) with its warm-up requests."""
    staging = base.parent / f".staging-{version}"
    shutil.copytree(model, staging)
    if requests:
        write_warmup_file(staging, requests)
    base.mkdir(exist_ok=True)
    staging.rename(base / str(version))


def write_raw_records(version_dir: pathlib.Path, records: list[bytes]) -> None:
    """A warm-up file of arbitrary TFRecord records (what `write_warmup_file` refuses)."""
    import tensorflow as tf

    path = warmup_path(version_dir)
    path.parent.mkdir(exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record)


class Served:
    """A `ModelManager` over one base path, with the warm-ups it reported."""

    def __init__(self, base: pathlib.Path, policy: str = "", **warmup) -> None:
        from google.protobuf import text_format
        from tensorflow_serving.config import model_server_config_pb2

        config = model_server_config_pb2.ModelServerConfig()
        text_format.Parse(
            f'model_config_list {{ config {{ name: "{MODEL}" base_path: "{base}" '
            f'model_platform: "tensorflow" {policy} }} }}',
            config,
        )
        self.warmups: list = []
        self.manager = ModelManager(warmup=WarmupOptions(**warmup))
        self.manager.on_warmup = lambda name, version, result: self.warmups.append(
            (name, version, result)
        )
        self.manager.apply_config(config)

    def states(self) -> dict[int, tuple[int, Code, str]]:
        return {v: (s.state, s.error_code, s.error_message) for v, s in self.manager.status(MODEL)}

    def seen(self, rows: int = 1, version: int | None = None) -> tuple[int, list[int]]:
        """(version that answered, its `seen` output) for a Predict of `rows` rows."""
        from serving.model_server.dataplane import DataPlane, Spec

        version, _, outputs = DataPlane(self.manager).predict_arrays(
            Spec(MODEL, version), {"x": np.zeros(rows, np.float32)}
        )
        return version, outputs["seen"].tolist()

    def close(self) -> None:
        self.manager.shutdown()


# ---- replaying a warm-up file -------------------------------------------------------------
def test_every_record_runs_on_the_servable_before_it_is_available(tmp_path, row_counter, caplog):
    base = tmp_path / "m"
    add_version(base, row_counter, 1, [predict_request(n) for n in (1, 2, 3)])
    with caplog.at_level(logging.INFO, logger="aiqleads.model_server"):
        served = Served(base)
    try:
        assert served.states() == {1: (AVAILABLE, Code.OK, "")}
        # 1 + 2 + 3 warm-up rows ran on this servable, so the first request's row is the 7th.
        assert served.seen(rows=1) == (1, [7])
        [(name, version, result)] = served.warmups
        assert (name, version, result.records, result.code) == (MODEL, 1, 3, Code.OK)
        assert result.path == base / "1" / "assets.extra" / "tf_serving_warmup_requests"
        assert "Finished warm-up of servable {name: m version: 1}: 3 records (x1)" in caplog.text
    finally:
        served.close()


def test_each_record_runs_num_request_iterations_times(tmp_path, row_counter):
    base = tmp_path / "m"
    add_version(base, row_counter, 1, [predict_request(n) for n in (1, 2, 3)])
    served = Served(base, iterations=2)
    try:
        assert served.seen(rows=2) == (1, [14, 14])  # 2 * 6 warm-up rows, then these 2
        assert served.warmups[0][2].records == 3
    finally:
        served.close()


@pytest.mark.parametrize("with_file", [True, False], ids=["warmup-disabled", "no-warmup-file"])
def test_without_warmup_the_version_loads_as_before(tmp_path, row_counter, with_file):
    base = tmp_path / "m"
    add_version(base, row_counter, 1, [predict_request(5)] if with_file else [])
    served = Served(base, enabled=not with_file)
    try:
        assert served.states() == {1: (AVAILABLE, Code.OK, "")}
        assert served.seen(rows=1) == (1, [1])
        assert served.warmups == []
    finally:
        served.close()


def test_a_thousand_records_run_and_one_more_fails_the_load(tmp_path, row_counter):
    from tensorflow_serving.apis import prediction_log_pb2

    one_row = prediction_log_pb2.PredictionLog()
    one_row.predict_log.request.CopyFrom(predict_request(1))
    base = tmp_path / "m"
    add_version(base, row_counter, 1, [predict_request(1)] * MAX_RECORDS)
    add_version(base, row_counter, 2)
    write_raw_records(base / "2", [one_row.SerializeToString()] * (MAX_RECORDS + 1))
    served = Served(base, policy="model_version_policy { all {} }")
    try:
        states = served.states()
        assert states[1] == (AVAILABLE, Code.OK, "")
        state, code, message = states[2]
        assert (state, code) == (END, Code.INVALID_ARGUMENT)
        assert "Number of warmup records exceeds the maximum (1000)" in message
        assert str(warmup_path(base / "2")) in message
        assert served.seen(rows=1, version=1) == (1, [MAX_RECORDS + 1])
        results = {version: result for _, version, result in served.warmups}
        assert (results[1].records, results[1].code) == (MAX_RECORDS, Code.OK)
        assert (results[2].records, results[2].code) == (MAX_RECORDS, Code.INVALID_ARGUMENT)
    finally:
        served.close()


def _session_run_log() -> bytes:
    from tensorflow_serving.apis import prediction_log_pb2

    entry = prediction_log_pb2.PredictionLog()
    entry.session_run_log.request.feed.add().name = "x"
    return entry.SerializeToString()


BAD_WARMUPS = {
    "missing-signature": (
        lambda d: write_warmup_file(d, [predict_request(1), predict_request(1, "nope")]),
        Code.FAILED_PRECONDITION,
        'record 2: Serving signature key "nope" not found.',
    ),
    "not-tfrecord": (
        lambda d: (d / "assets.extra").mkdir() or warmup_path(d).write_bytes(b"not a record" * 4),
        Code.DATA_LOSS,
        "Please verify your warmup data is in TFRecord format.",
    ),
    "unparsable-record": (
        lambda d: write_raw_records(d, [b"\xff\xff\xff"]),
        Code.INVALID_ARGUMENT,
        "Failed to parse warmup record 1",
    ),
    "session-run-log": (
        lambda d: write_raw_records(d, [_session_run_log()]),
        Code.UNIMPLEMENTED,
        "Unsupported log_type for warmup: session_run_log",
    ),
}


@pytest.mark.parametrize("kind", list(BAD_WARMUPS))
def test_a_failed_warmup_fails_the_load_and_the_previous_version_keeps_serving(
    tmp_path, row_counter, kind
):
    write_bad, code, text = BAD_WARMUPS[kind]
    base = tmp_path / "m"
    add_version(base, row_counter, 1)
    served = Served(base)  # latest version only
    try:
        assert served.seen() == (1, [1])
        staging = tmp_path / "staging"
        shutil.copytree(row_counter, staging)
        write_bad(staging)
        staging.rename(base / "2")
        served.manager.poll()
        state, got_code, message = served.states()[2]
        assert (state, got_code) == (END, code)
        assert message.startswith(f"Model warm-up from {warmup_path(base / '2')} failed: ")
        assert text in message
        # Version 2 never serves; version 1, no longer wanted, stays until a version loads.
        assert served.states()[1] == (AVAILABLE, Code.OK, "")
        assert served.seen() == (1, [2])
        served.manager.poll()  # a failed version is not retried
        assert served.states()[2][:2] == (END, code)
        add_version(base, row_counter, 3, [predict_request(4)])
        served.manager.poll()
        assert served.states()[3] == (AVAILABLE, Code.OK, "")
        assert served.states()[1][0] == END
        assert served.seen() == (3, [5])
    finally:
        served.close()


def test_classify_regress_and_multi_inference_records_run(tmp_path, tf_serving_testdata):
    from tensorflow_serving.apis import (
        classification_pb2,
        inference_pb2,
        regression_pb2,
    )

    def input_of(xs):
        from tensorflow_serving.apis import input_pb2

        proto = input_pb2.Input()
        for x in xs:
            example = proto.example_list.examples.add()
            example.features.feature["x"].float_list.value.append(x)
        return proto

    classify = classification_pb2.ClassificationRequest(input=input_of([1.0]))
    classify.model_spec.signature_name = "classify_x_to_y"
    regress = regression_pb2.RegressionRequest(input=input_of([2.0, 3.0]))
    regress.model_spec.signature_name = "regress_x_to_y"
    multi = inference_pb2.MultiInferenceRequest(input=input_of([4.0]))
    for signature, method in (
        ("classify_x_to_y", "tensorflow/serving/classify"),
        ("regress_x_to_y2", "tensorflow/serving/regress"),
    ):
        task = multi.tasks.add(method_name=method)
        task.model_spec.signature_name = signature
    bad_multi = inference_pb2.MultiInferenceRequest(input=input_of([4.0]))
    bad_multi.tasks.add(method_name="tensorflow/serving/predict")

    base = tmp_path / "m"
    half_plus_two = tf_serving_testdata / HALF_PLUS_TWO
    add_version(base, half_plus_two, 1, [classify, regress, multi, predict_request(2)])
    add_version(base, half_plus_two, 2, [regress, bad_multi])
    served = Served(base, policy="model_version_policy { all {} }")
    try:
        states = served.states()
        assert states[1] == (AVAILABLE, Code.OK, "")
        assert served.warmups[0][2].records == 4
        state, code, message = states[2]
        assert (state, code) == (END, Code.INVALID_ARGUMENT)
        assert message.endswith(
            "record 2: Unsupported signature method_name: tensorflow/serving/predict"
        )
    finally:
        served.close()


# ---- the writer ---------------------------------------------------------------------------
def test_write_warmup_file_writes_prediction_logs_in_order(tmp_path):
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    requests = [predict_request(1), predict_request(3, "other")]
    path = write_warmup_file(tmp_path, requests)
    assert path == tmp_path / "assets.extra" / "tf_serving_warmup_requests"
    logs = []
    for record in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
        entry = prediction_log_pb2.PredictionLog()
        entry.ParseFromString(record)
        logs.append(entry.predict_log.request)
    assert logs == requests
    assert sorted(p.name for p in path.parent.iterdir()) == ["tf_serving_warmup_requests"]
    write_warmup_file(tmp_path, requests[:1])  # rewriting replaces the file
    assert len(list(tf.data.TFRecordDataset(str(path)).as_numpy_iterator())) == 1


@pytest.mark.parametrize(
    ("requests", "message"),
    [
        ([], "no warm-up requests given"),
        (["x"], "warm-up request 0 is a str; expected a tensorflow_serving.apis PredictRequest"),
        ("too-many", "1001 warm-up requests; a model server accepts at most 1000"),
    ],
)
def test_write_warmup_file_rejects_bad_requests(tmp_path, requests, message):
    if requests == "too-many":
        requests = [predict_request(1)] * (MAX_RECORDS + 1)
    with pytest.raises(WarmupRequestsError, match=message):
        write_warmup_file(tmp_path, requests)
    assert not (tmp_path / "assets.extra").exists()


def test_write_warmup_file_needs_the_savedmodel_directory(tmp_path):
    with pytest.raises(WarmupRequestsError, match="does not exist"):
        write_warmup_file(tmp_path / "missing", [predict_request(1)])


# ---- which versions go ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("wanted", "loaded", "retired"),
    [
        ({2}, {1, 2}, {1}),  # the new version is up: the old one goes
        ({3}, {1, 2}, {1}),  # 3 not loaded (loading or failed): 2 stays, 1 goes
        ({3}, {2}, set()),  # never zero versions while the wanted one is missing
        (set(), {1, 2}, {1, 2}),  # model has nothing wanted (e.g. specific {} emptied)
        ({1, 2}, {1, 2}, set()),
    ],
)
def test_retired_versions_keep_one_while_no_wanted_version_is_loaded(wanted, loaded, retired):
    assert retired_versions(wanted, loaded) == retired


# ---- through the real server process ------------------------------------------------------
def _get(url: str) -> str:
    import urllib.request

    with urllib.request.urlopen(url, timeout=30) as resp:
        return resp.read().decode()


@pytest.mark.e2e
def test_server_warms_up_before_serving_and_reports_a_failed_warmup(
    tmp_path, row_counter, tf_serving_testdata
):
    import json
    import urllib.request

    import grpc
    from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

    from serving.process import running_model_server

    base = tmp_path / "m"
    add_version(base, row_counter, 1, [predict_request(n) for n in (1, 2, 3)])
    add_version(base, row_counter, 2, [predict_request(1), predict_request(1, "nope")])
    config = tmp_path / "models.config"
    config.write_text(
        f'model_config_list {{ config {{ name: "m" base_path: "{base}" '
        'model_platform: "tensorflow" model_version_policy { all {} } } }'
    )
    args = [
        f"--model_config_file={config}",
        f"--monitoring_config_file={tf_serving_testdata / 'monitoring_config.txt'}",
    ]
    with running_model_server(args, tmp_path / "server.log", MODEL) as server:
        body = json.loads(_get(f"{server.rest_url}/v1/models/m"))
        status = {s["version"]: s for s in body["model_version_status"]}
        assert status["1"]["state"] == "AVAILABLE"
        assert status["2"]["state"] == "END"
        assert status["2"]["status"]["error_code"] == "FAILED_PRECONDITION"
        assert status["2"]["status"]["error_message"] == (
            f"Model warm-up from {warmup_path(base / '2')} failed: "
            'record 2: Serving signature key "nope" not found.'
        )
        with grpc.insecure_channel(server.grpc_target) as channel:
            request = get_model_status_pb2.GetModelStatusRequest()
            request.model_spec.name = MODEL
            request.model_spec.version.value = 2
            answer = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(
                request, timeout=30
            )
        [entry] = answer.model_version_status
        assert (entry.state, entry.status.error_code) == (END, Code.FAILED_PRECONDITION)

        # The first request is served by version 1, after its 6 warm-up rows.
        predict = urllib.request.Request(
            f"{server.rest_url}/v1/models/m:predict",
            data=json.dumps({"instances": [0.0]}).encode(),
            method="POST",
        )
        with urllib.request.urlopen(predict, timeout=30) as resp:
            assert json.loads(resp.read()) == {"predictions": [7]}

        metrics = _get(f"{server.rest_url}/monitoring/prometheus/metrics")
        # 3 records on version 1, and the 1 record of version 2 that ran before the failure.
        assert 'aiqleads_model_server_warmup_records_total{model_name="m"} 4.0' in metrics
        for version, code in (("1", "OK"), ("2", "FAILED_PRECONDITION")):
            label = f'model_path="{base / version}",status="{code}"'
            assert f":tensorflow:serving:model_warmup_latency_count{{{label}}} 1.0" in metrics
        log = server.log_path.read_text()
    assert "Finished warm-up of servable {name: m version: 1}: 3 records (x1)" in log
    assert "Loading servable m version 2 failed: Model warm-up from" in log
