"""The recommendation API over REST and gRPC, variants, feedback logs and the Predict pass-through."""

from __future__ import annotations

import json
import math
import time

import grpc
import pytest
import requests
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from serving.protos.generated import recommendations_pb2 as pb
from serving.protos.generated import recommendations_pb2_grpc as pb_grpc


def _items(response: pb.RecommendResponse) -> list[dict]:
    return [{"lead_id": i.lead_id, "score": i.score} for i in response.items]


def test_grpc_and_rest_give_the_same_answer_and_share_the_cache(
    start_gateway, model_server, recommend, expected
):
    gateway = start_gateway()
    with grpc.insecure_channel(gateway.grpc_target) as channel:
        stub = pb_grpc.RecommendationsStub(channel)
        first = stub.Recommend(
            pb.RecommendRequest(user_id="judy", k=4, latitude=10.5, longitude=-3.25), timeout=10
        )
        assert (first.model_version, first.variant, first.cached) == (1, "stable", False)
        assert _items(first) == expected("judy", 4, 1, with_location=True)
        assert len(first.request_id) == 32
    rest = recommend(gateway, user_id="judy", k=4, latitude=10.5, longitude=-3.25)
    assert rest["cached"] is True
    assert rest["items"] == _items(first)
    assert model_server.predict_calls == 1


def test_feedback_is_logged_with_the_version_and_variant_of_its_request(
    start_gateway, model_server, recommend, tmp_path
):
    model_server.set_labels({"stable": 1, "canary": 1})
    gateway = start_gateway(canary_fraction=1.0)
    answer = recommend(gateway, user_id="kate", k=2)
    assert answer["variant"] == "canary"
    lead = answer["items"][0]["lead_id"]
    body = {"request_id": answer["request_id"], "user_id": "kate", "lead_id": lead}
    response = requests.post(
        f"{gateway.url}/v1/feedback", json={**body, "event_type": "click"}, timeout=10
    )
    assert (response.status_code, response.json()) == (200, {"accepted": True})
    with grpc.insecure_channel(gateway.grpc_target) as channel:
        reply = pb_grpc.RecommendationsStub(channel).Feedback(
            pb.FeedbackRequest(**body, event_type="inquiry"), timeout=10
        )
    assert reply.accepted
    lines = (tmp_path / "logs" / "feedback.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    for record in records:
        assert isinstance(record.pop("ts"), float)
    assert records == [
        {**body, "event_type": "click", "model_version": 1, "variant": "canary"},
        {**body, "event_type": "inquiry", "model_version": 1, "variant": "canary"},
    ]
    (logged,) = [
        json.loads(x) for x in (tmp_path / "logs" / "requests.jsonl").read_text().splitlines()
    ]
    assert logged["request_id"] == answer["request_id"]
    assert (logged["variant"], logged["model_version"], logged["cache"]) == ("canary", 1, "miss")
    assert logged["lead_ids"] == [item["lead_id"] for item in answer["items"]]
    metrics = requests.get(f"{gateway.url}/metrics", timeout=5).text
    assert 'aiqleads_gateway_feedback_total{event_type="click",variant="canary"} 1.0' in metrics


def test_feedback_log_is_bounded(start_gateway, tmp_path):
    gateway = start_gateway(log_max_bytes=2048, log_backups=2)
    body = {"request_id": "r-1", "user_id": "lena", "lead_id": "lead-01", "event_type": "view"}
    for _ in range(100):  # about 150 bytes a record: 15 KB in all
        assert requests.post(f"{gateway.url}/v1/feedback", json=body, timeout=10).ok
    files = sorted((tmp_path / "logs").glob("feedback.jsonl*"))
    assert [f.name for f in files] == ["feedback.jsonl", "feedback.jsonl.1", "feedback.jsonl.2"]
    assert sum(f.stat().st_size for f in files) <= 3 * 2048


def test_canary_and_stable_labels_split_users_and_missing_canary_falls_back(
    start_gateway, model_server, push, recommend, expected
):
    push(2)
    model_server.set_labels({"stable": 1, "canary": 2})
    gateway = start_gateway(canary_fraction=0.5)
    # sha256 buckets: "alice" 0.171 and "peggy" 0.186 (< 0.5: canary), "mallory" 0.753 (stable)
    answers = {
        user: recommend(gateway, user_id=user, k=3) for user in ("alice", "peggy", "mallory")
    }
    assert {u: (a["variant"], a["model_version"]) for u, a in answers.items()} == {
        "alice": ("canary", 2),
        "peggy": ("canary", 2),
        "mallory": ("stable", 1),
    }
    assert answers["alice"]["items"] == expected("alice", 3, 2)
    assert answers["mallory"]["items"] == expected("mallory", 3, 1)
    model_server.set_labels({"stable": 1})  # the canary is withdrawn: everyone on stable
    deadline = time.monotonic() + 30
    while (answer := recommend(gateway, user_id="alice", k=3))["variant"] != "stable":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert (answer["model_version"], answer["items"]) == (1, expected("alice", 3, 1))
    metrics = requests.get(f"{gateway.url}/metrics", timeout=5).text
    assert 'aiqleads_gateway_model_version{variant="canary"} 1.0' in metrics


def test_healthz_and_metrics(start_gateway):
    gateway = start_gateway()
    assert requests.get(f"{gateway.url}/healthz", timeout=5).json() == {"status": "serving"}
    requests.post(f"{gateway.url}/v1/recommendations", json={"user_id": "m", "k": 1}, timeout=5)
    text = requests.get(f"{gateway.url}/metrics", timeout=5).text
    for line in (
        'aiqleads_gateway_requests_total{code="200",endpoint="/v1/recommendations"} 1.0',
        'aiqleads_gateway_request_seconds_count{cache="miss",endpoint="/v1/recommendations"} 1.0',
        'aiqleads_gateway_model_version{variant="stable"} 1.0',
        "aiqleads_gateway_redis_up 1.0",
        'aiqleads_gateway_score_count{variant="stable"} 1.0',
    ):
        assert line in text


def _vector(dtype, field: str, values) -> tensor_pb2.TensorProto:
    shape = tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=len(values))]
    )
    proto = tensor_pb2.TensorProto(dtype=dtype, tensor_shape=shape)
    getattr(proto, field).extend(values)
    return proto


def _predict_request(user: str, k: int, label: str = "") -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "lead_recommender"
    request.model_spec.signature_name = "recommend"
    if label:
        request.model_spec.version_label = label
    request.inputs["user_id"].CopyFrom(_vector(types_pb2.DT_STRING, "string_val", [user.encode()]))
    request.inputs["latitude"].CopyFrom(_vector(types_pb2.DT_FLOAT, "float_val", [math.nan]))
    request.inputs["longitude"].CopyFrom(_vector(types_pb2.DT_FLOAT, "float_val", [math.nan]))
    request.inputs["k"].CopyFrom(_vector(types_pb2.DT_INT32, "int_val", [k]))
    return request


def test_grpc_predict_pass_through_is_cached_by_resolved_version(
    start_gateway, model_server, push, expected
):
    gateway = start_gateway()
    with grpc.insecure_channel(gateway.grpc_target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        first = stub.Predict(_predict_request("nina", 3), timeout=10)
        second = stub.Predict(_predict_request("nina", 3), timeout=10)
        assert first == second
        assert first.model_spec.version.value == 1
        leads = [v.decode() for v in first.outputs["lead_ids"].string_val]
        assert leads == [item["lead_id"] for item in expected("nina", 3, 1)]
        assert model_server.predict_calls == 1
        push(2)  # the model server finds it within its 1 s file-system poll, then loads it
        deadline = time.monotonic() + 60
        while stub.Predict(_predict_request("nina", 3), timeout=10).model_spec.version.value != 2:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        with pytest.raises(grpc.RpcError) as error:
            stub.Predict(_predict_request("nina", 3, label="nope"), timeout=10)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # the model server's answer
        assert "nope" in error.value.details()


def test_rest_predict_pass_through_rows_and_columns(start_gateway, model_server, expected):
    gateway = start_gateway()
    url = f"{gateway.url}/v1/models/lead_recommender/versions/1:predict"
    rows = {
        "signature_name": "recommend",
        "instances": [{"user_id": "oscar", "latitude": "NaN", "longitude": "NaN", "k": 2}],
    }
    response = requests.post(
        url, data=json.dumps(rows), headers={"Content-Type": "application/json"}, timeout=10
    )
    assert response.status_code == 200, response.text
    want = expected("oscar", 2, 1)
    assert response.json() == {
        "predictions": [
            {"lead_ids": [i["lead_id"] for i in want], "scores": [i["score"] for i in want]}
        ]
    }
    columns = {
        "signature_name": "recommend",
        "inputs": {"user_id": ["oscar"], "latitude": [1.0], "longitude": [2.0], "k": [2]},
    }
    answer = requests.post(url, json=columns, timeout=10).json()
    located = expected("oscar", 2, 1, with_location=True)
    assert answer == {
        "outputs": {
            "lead_ids": [[i["lead_id"] for i in located]],
            "scores": [[i["score"] for i in located]],
        }
    }
    assert requests.post(url, json=columns, timeout=10).json() == answer
    assert model_server.predict_calls == 2
    bad_signature = requests.post(url, json={**columns, "signature_name": "nope"}, timeout=10)
    assert (bad_signature.status_code, bad_signature.json()) == (
        400,
        {"error": "serving signature 'nope' not found; the model has recommend, serving_default"},
    )


def test_online_features_fill_a_missing_location(start_gateway, redis_server, recommend, expected):
    gateway = start_gateway(online_features=True)
    redis_server.client().hset(
        "aiqleads:features:user:rita", mapping={"latitude": "40.7", "longitude": "-74.0"}
    )
    redis_server.client().hset("aiqleads:features:user:sam", mapping={"latitude": "999"})
    assert recommend(gateway, user_id="rita", k=2)["items"] == expected("rita", 2, 1, True)
    # Given coordinates win; an incomplete or missing hash means no location.
    assert recommend(gateway, user_id="rita", k=2, latitude=1.0, longitude=2.0)["cached"] is False
    assert recommend(gateway, user_id="sam", k=2)["items"] == expected("sam", 2, 1)
    assert recommend(gateway, user_id="tom", k=2)["items"] == expected("tom", 2, 1)
