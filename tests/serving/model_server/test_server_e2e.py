"""The model server as a process: version watching without failed requests, a string-input
TF2 model, batching through the real server, start-up errors, SIGTERM."""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest

from serving.process import model_server_binary, running_model_server, start_model_server

REPO = pathlib.Path(__file__).resolve().parents[3]
TESTDATA = REPO.parent / "shared" / "testdata" / "tf_serving"
HALF_PLUS_TWO = TESTDATA / "saved_model_half_plus_two_2_versions" / "00000123"
sys.path.insert(0, str(REPO / "tests" / "fixtures"))

pytestmark = pytest.mark.e2e


def _post(url: str, body) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as resp:
        return json.loads(resp.read())


def _states(server, model: str) -> dict[str, str]:
    body = _get(f"{server.rest_url}/v1/models/{model}")
    return {s["version"]: s["state"] for s in body["model_version_status"]}


def _wait(predicate, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.3)


def test_new_versions_load_old_unload_no_request_fails(tmp_path):
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    base = tmp_path / "m"
    shutil.copytree(HALF_PLUS_TWO, base / "1")
    args = ["--model_name=m", f"--model_base_path={base}", "--file_system_poll_wait_seconds=1"]
    with running_model_server(args, tmp_path / "server.log", "m") as server:
        seen, failures, stop = set(), [], threading.Event()

        def hammer():
            request = predict_pb2.PredictRequest()
            request.model_spec.name = "m"
            tensor = request.inputs["x"]
            tensor.dtype = 1  # DT_FLOAT
            tensor.tensor_shape.dim.add().size = 1
            tensor.float_val.append(2.0)
            with grpc.insecure_channel(server.grpc_target) as channel:
                stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
                while not stop.is_set():
                    try:
                        response = stub.Predict(request, timeout=30)
                        assert list(response.outputs["y"].float_val) == [3.0]
                        seen.add(response.model_spec.version.value)
                    except Exception as e:  # noqa: BLE001 - every failure is recorded
                        failures.append(e)

        thread = threading.Thread(target=hammer)
        thread.start()
        try:
            # A version being written (no saved_model.pb yet) is ignored.
            shutil.copytree(HALF_PLUS_TWO / "variables", base / "3" / "variables")
            staging = tmp_path / "staging"
            shutil.copytree(HALF_PLUS_TWO, staging)
            staging.rename(base / "2")
            _wait(lambda: _states(server, "m").get("2") == "AVAILABLE")
            _wait(lambda: _states(server, "m").get("1") == "END")
            assert "3" not in _states(server, "m")
            shutil.copy(HALF_PLUS_TWO / "saved_model.pb", base / "3" / "saved_model.pb")
            _wait(lambda: _states(server, "m") == {"3": "AVAILABLE", "2": "END", "1": "END"})
            _wait(lambda: 3 in seen, timeout=30)
        finally:
            stop.set()
            thread.join()
        assert failures == []
        assert {1, 3} <= seen


def test_string_input_tf2_model_over_rest_and_grpc(tmp_path):
    import tensorflow as tf
    from recommend_model import build_recommend_model, expected_items
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    base = tmp_path / "lead_recommender"
    build_recommend_model(base, version=4)
    args = ["--model_name=lead_recommender", f"--model_base_path={base}"]
    with running_model_server(args, tmp_path / "server.log", "lead_recommender") as server:
        url = f"{server.rest_url}/v1/models/lead_recommender:predict"
        body = {
            "signature_name": "recommend",
            "instances": [
                {"user_id": "abc", "latitude": 40.7, "longitude": -74.0, "k": 3},
                {"user_id": {"b64": "dXNlci0x"}, "latitude": 1.0, "longitude": 2.0, "k": 3},
            ],
        }
        status, answer = _post(url, body)
        assert status == 200
        for row, user in zip(answer["predictions"], ["abc", "user-1"], strict=True):
            items = expected_items(user, 3, version=4, with_location=True)
            assert row["lead_ids"] == [lead for lead, _ in items]
            np.testing.assert_allclose(row["scores"], [s for _, s in items], rtol=1e-6)

        columnar = {
            "signature_name": "recommend",
            "inputs": {"user_id": ["abcd"], "latitude": [float("nan")], "longitude": [0.0],
                       "k": [2]},
        }  # fmt: skip
        status, answer = _post(url, columnar)
        assert status == 200
        items = expected_items("abcd", 2, version=4)
        assert answer["outputs"]["lead_ids"] == [[lead for lead, _ in items]]

        request = predict_pb2.PredictRequest()
        request.model_spec.name = "lead_recommender"
        request.model_spec.signature_name = "recommend"
        for key, value in {
            "user_id": np.array([b"xy"], dtype=object),
            "latitude": np.array([np.nan], np.float32),
            "longitude": np.array([0.0], np.float32),
            "k": np.array([10], np.int32),
        }.items():
            request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
        with grpc.insecure_channel(server.grpc_target) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            response = stub.Predict(request, timeout=30)
        items = expected_items("xy", 10, version=4)
        got = tf.make_ndarray(response.outputs["lead_ids"]).tolist()
        assert got == [[lead.encode() for lead, _ in items]]
        assert response.model_spec.version.value == 4


def _recommend_request(user_id: bytes, k: int):
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "lead_recommender"
    request.model_spec.signature_name = "recommend"
    for key, value in {
        "user_id": np.array([user_id], dtype=object),
        "latitude": np.array([np.nan], np.float32),
        "longitude": np.array([0.0], np.float32),
        "k": np.array([k], np.int32),
    }.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    return request


def _threads(pid: int | None) -> int:
    assert pid is not None
    return len(list(pathlib.Path(f"/proc/{pid}/task").iterdir()))


def test_session_parallelism_sizes_tensorflows_pools_and_keeps_the_answers(tmp_path):
    import tensorflow as tf
    from recommend_model import build_recommend_model, expected_items
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    base = tmp_path / "lead_recommender"
    build_recommend_model(base, version=4)
    threads = {}
    for n in (1, 3):
        args = [
            "--model_name=lead_recommender",
            f"--model_base_path={base}",
            f"--tensorflow_session_parallelism={n}",
        ]
        with running_model_server(args, tmp_path / f"server-{n}.log", "lead_recommender") as s:
            with grpc.insecure_channel(s.grpc_target) as channel:
                stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
                response = stub.Predict(_recommend_request(b"xy", 10), timeout=30)
            got = tf.make_ndarray(response.outputs["lead_ids"]).tolist()
            assert got == [[lead.encode() for lead, _ in expected_items("xy", 10, version=4)]]
            threads[n] = _threads(s.child.pid)
    # One intra-op and one inter-op pool, each of n threads: 2 * (3 - 1) more threads.
    assert threads[3] - threads[1] == 4


def test_batching_server_answers_each_caller_its_rows(tmp_path):
    base = tmp_path / "m"
    shutil.copytree(HALF_PLUS_TWO, base / "1")
    params = tmp_path / "batching.txt"
    params.write_text("max_batch_size { value: 32 }\nbatch_timeout_micros { value: 2000 }\n")
    monitoring = TESTDATA / "monitoring_config.txt"
    args = [
        "--model_name=m", f"--model_base_path={base}", "--enable_batching",
        f"--batching_parameters_file={params}", f"--monitoring_config_file={monitoring}",
    ]  # fmt: skip
    with running_model_server(args, tmp_path / "server.log", "m") as server:
        url = f"{server.rest_url}/v1/models/m:predict"

        def one(i: int):
            return _post(url, {"instances": [[float(i)], [float(i + 100)]]})

        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(one, range(64)))
        for i, (status, body) in enumerate(results):
            assert status == 200
            assert body == {"predictions": [[0.5 * i + 2], [0.5 * (i + 100) + 2]]}
        with urllib.request.urlopen(f"{server.rest_url}/monitoring/prometheus/metrics") as r:
            metrics = r.read().decode()
        assert "aiqleads_model_server_batch_size_count" in metrics
        assert "aiqleads_model_server_batch_size_sum 128.0" in metrics  # every row ran once


def test_bad_model_config_fails_start_up_with_a_clear_message(tmp_path):
    proc = subprocess.run(
        [model_server_binary(), f"--model_config_file={TESTDATA / 'bad_model_config.txt'}"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "bad_model_config.txt" in proc.stderr
    assert "not a valid text-format ModelServerConfig" in proc.stderr
    assert "Traceback" not in proc.stderr
    # One line, ours (`error: ...`) carrying TF Serving's words and the parser's message.
    [line] = [x for x in proc.stderr.splitlines() if "bad_model_config.txt" in x]
    assert line.startswith("error: Invalid protobuf file: ")
    assert "Error parsing text-format tensorflow.serving.ModelServerConfig: 1:1: " in line


def test_sigterm_drains_and_exits_zero(tmp_path):
    base = tmp_path / "m"
    shutil.copytree(HALF_PLUS_TWO, base / "1")
    server = start_model_server(["--model_name=m", f"--model_base_path={base}"], tmp_path / "log")
    try:
        server.wait_ready("m")
        assert _post(f"{server.rest_url}/v1/models/m:predict", {"instances": [2.0]}) == (
            200,
            {"predictions": [3.0]},
        )
    finally:
        code = server.stop()
    assert code == 0
    assert "stopped" in server.log_tail()


def test_stateful_tf1_counter_model_over_grpc_unix_socket(tmp_path):
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    socket_path = tmp_path / "model_server.sock"
    args = [
        "--model_name=counter",
        f"--model_base_path={TESTDATA / 'saved_model_counter'}",
        f"--grpc_socket_path={socket_path}",
    ]
    with running_model_server(args, tmp_path / "server.log", "counter") as server:
        assert server.grpc_port  # TCP still on; the socket is an extra listener
        with grpc.insecure_channel(f"unix:{socket_path}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)

            def call(signature: str, **inputs) -> float:
                request = predict_pb2.PredictRequest()
                request.model_spec.name = "counter"
                request.model_spec.signature_name = signature
                for key, value in inputs.items():
                    request.inputs[key].CopyFrom(tf.make_tensor_proto(np.float32(value)))
                response = stub.Predict(request, timeout=30)
                return float(tf.make_ndarray(response.outputs["output"]))

            # The counter lives in a TF1 reference variable: state persists across calls.
            assert [call("incr_counter"), call("incr_counter")] == [1.0, 2.0]
            assert call("incr_counter_by", delta=3.0) == 5.0
            assert call("get_counter") == 5.0
            assert call("reset_counter") == 0.0
