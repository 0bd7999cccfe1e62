"""The recommendation API over REST and gRPC, variants, the event log and the Predict pass-through."""

from __future__ import annotations

import json
import math
import time

import grpc
import pytest
import requests
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from aiqleads.events import attribution
from aiqleads.events.log import EventLog
from aiqleads.events.records import (
    FEEDBACK_STREAM,
    IMPRESSIONS_STREAM,
    Feedback,
    Impression,
    default_feedback_id,
)
from serving.process import wait_until
from serving.protos.generated import recommendations_pb2 as pb
from serving.protos.generated import recommendations_pb2_grpc as pb_grpc


def _items(response: pb.RecommendResponse) -> list[dict]:
    return [{"lead_id": i.lead_id, "score": i.score} for i in response.items]


def _feedback(answer: dict, user_id: str, event_type: str) -> dict:
    """The feedback body of ``user_id`` on the first lead of ``answer``."""
    return {
        "request_id": answer["request_id"],
        "user_id": user_id,
        "lead_id": answer["items"][0]["lead_id"],
        "event_type": event_type,
    }


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
        assert first.request_id.startswith("r1.s.")  # signed: version 1, variant stable
    rest = recommend(gateway, user_id="judy", k=4, latitude=10.5, longitude=-3.25)
    assert rest["cached"] is True
    assert rest["items"] == _items(first)
    assert model_server.predict_calls == 1


def test_answers_and_feedback_go_to_the_event_log_with_their_version_and_variant(
    start_gateway, model_server, recommend, event_store, attribution_key_file
):
    model_server.set_labels({"stable": 1, "canary": 1})
    gateway = start_gateway(canary_fraction=1.0)
    answer = recommend(gateway, user_id="kate", k=2, latitude=1.5, longitude=2.5)
    assert answer["variant"] == "canary"
    key = attribution.load_key(attribution_key_file)
    said = attribution.verify(key, answer["request_id"], "kate")
    assert (said.model_version, said.variant) == (1, "canary")
    assert abs(said.issued_at - time.time()) < 60
    lead = answer["items"][0]["lead_id"]
    body = {"request_id": answer["request_id"], "user_id": "kate", "lead_id": lead}
    response = requests.post(
        f"{gateway.url}/v1/feedback", json={**body, "event_type": "click"}, timeout=10
    )
    click_id = default_feedback_id(answer["request_id"], lead, "click")
    assert (response.status_code, response.json()) == (
        200,
        {"accepted": True, "duplicate": False, "feedback_id": click_id},
    )
    with grpc.insecure_channel(gateway.grpc_target) as channel:
        reply = pb_grpc.RecommendationsStub(channel).Feedback(
            pb.FeedbackRequest(**body, event_type="inquiry", feedback_id="my-id-1"), timeout=10
        )
    assert (reply.accepted, reply.duplicate, reply.feedback_id) == (True, False, "my-id-1")

    log = EventLog(event_store.url)
    stored = [Feedback.decode(e.raw) for e in log.range(FEEDBACK_STREAM)]
    wait_until(lambda: log.length(IMPRESSIONS_STREAM) == 1, 10, "the impression")
    (impression,) = [Impression.decode(e.raw) for e in log.range(IMPRESSIONS_STREAM)]
    log.close()
    for record in stored:
        assert record.issued_at <= record.ts
    assert [(f.feedback_id, f.event_type, f.model_version, f.variant) for f in stored] == [
        (click_id, "click", 1, "canary"),
        ("my-id-1", "inquiry", 1, "canary"),
    ]
    assert {f.request_id for f in stored} == {answer["request_id"]}
    assert impression.request_id == answer["request_id"]
    assert (impression.variant, impression.model_version, impression.cache) == ("canary", 1, "miss")
    assert list(impression.lead_ids) == [item["lead_id"] for item in answer["items"]]
    assert impression.features["user_latitude"] == 1.5
    metrics = requests.get(f"{gateway.url}/metrics", timeout=5).text
    assert 'aiqleads_gateway_feedback_total{event_type="click",variant="canary"} 1.0' in metrics
    assert 'aiqleads_gateway_impressions_total{outcome="logged"} 1.0' in metrics


def test_a_retried_feedback_is_recorded_once(start_gateway, recommend, event_store):
    gateway = start_gateway()
    body = _feedback(recommend(gateway, user_id="lena", k=1), "lena", "view")
    replies = [requests.post(f"{gateway.url}/v1/feedback", json=body, timeout=10) for _ in range(3)]
    assert [r.json()["duplicate"] for r in replies] == [False, True, True]
    log = EventLog(event_store.url)
    assert log.length(FEEDBACK_STREAM) == 1
    log.close()


def test_any_replica_attributes_feedback_even_after_the_answering_one_is_gone(
    start_gateway, recommend, event_store
):
    first, second = start_gateway(), start_gateway()
    answer = recommend(first, user_id="mia", k=1)
    first.stop()
    body = _feedback(answer, "mia", "purchase")
    reply = requests.post(f"{second.url}/v1/feedback", json=body, timeout=10)
    assert reply.status_code == 200 and reply.json()["accepted"] is True
    log = EventLog(event_store.url)
    (stored,) = [Feedback.decode(e.raw) for e in log.range(FEEDBACK_STREAM)]
    log.close()
    assert (stored.model_version, stored.variant) == (answer["model_version"], "stable")


@pytest.mark.parametrize(
    ("request_id", "user_id"),
    [("r1.s.1.2.0123456789abcdef", "nina"), (None, "someone-else")],
    ids=["forged", "other-user"],
)
def test_feedback_for_an_unknown_answer_is_refused(start_gateway, recommend, request_id, user_id):
    gateway = start_gateway()
    answer = recommend(gateway, user_id="nina", k=1)
    body = {**_feedback(answer, user_id, "click"), "request_id": request_id or answer["request_id"]}
    reply = requests.post(f"{gateway.url}/v1/feedback", json=body, timeout=10)
    assert reply.status_code == 400
    assert "was not issued by this service" in reply.json()["error"]


def test_with_the_event_store_down_feedback_is_a_retryable_503_and_nothing_is_lost(
    start_gateway, recommend, event_store
):
    gateway = start_gateway(event_store_timeout_ms=200)
    answer = recommend(gateway, user_id="olga", k=1)
    body = _feedback(answer, "olga", "click")
    event_store.kill()
    refused = requests.post(f"{gateway.url}/v1/feedback", json=body, timeout=10)
    assert refused.status_code == 503 and "retry" in refused.json()["error"]
    assert recommend(gateway, user_id="olga", k=1)["items"]  # answers go on without the store
    event_store.start()
    accepted = wait_until(
        lambda: (
            requests.post(f"{gateway.url}/v1/feedback", json=body, timeout=10).status_code == 200
        ),
        20,
        "feedback accepted again",
    )
    assert accepted >= 0
    log = EventLog(event_store.url)
    assert log.length(FEEDBACK_STREAM) == 1
    log.close()
    metrics = requests.get(f"{gateway.url}/metrics", timeout=5).text
    assert 'aiqleads_gateway_feedback_appends_total{outcome="refused"} 1.0' in metrics


def test_impressions_are_dropped_and_counted_when_the_store_cannot_keep_up(
    start_gateway, recommend, event_store
):
    gateway = start_gateway(impression_queue=2, event_store_timeout_ms=200)
    event_store.kill()
    for i in range(12):
        assert recommend(gateway, user_id=f"user-{i}", k=1)["items"]  # answers never wait

    def outcomes() -> dict[str, float]:
        metrics = requests.get(f"{gateway.url}/metrics", timeout=5).text
        prefix = 'aiqleads_gateway_impressions_total{outcome="'
        return {
            line[len(prefix) :].split('"')[0]: float(line.split()[-1])
            for line in metrics.splitlines()
            if line.startswith(prefix)
        }

    # At most the queue and one batch taken from it wait for the store; the rest is dropped.
    assert outcomes().get("dropped", 0) >= 12 - 2 * 2
    event_store.start()
    # Once the store is back, every answer is accounted for: logged or dropped.
    wait_until(lambda: sum(outcomes().values()) == 12, 20, "every impression accounted for")


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


def test_a_model_without_the_online_signature_answers_from_its_snapshot(
    start_gateway, redis_server, recommend, expected
):
    """With an online store configured, a model without `feature_views` and
    `recommend_online` (the fixture, like models trained before the store) is still asked
    with `recommend`, and the outcome is counted; the store is never read for it."""
    import requests

    gateway = start_gateway(online_store_url=redis_server.url)
    assert recommend(gateway, user_id="rita", k=2)["items"] == expected("rita", 2, 1)
    assert recommend(gateway, user_id="rita", k=2)["cached"] is True
    metrics = requests.get(f"{gateway.url}/metrics", timeout=5).text
    assert 'aiqleads_gateway_online_features_total{outcome="snapshot_model"} 2.0' in metrics
    assert "aiqleads_gateway_online_lookup_seconds_count 0.0" in metrics
