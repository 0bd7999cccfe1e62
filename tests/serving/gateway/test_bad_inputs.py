"""Bad inputs on every endpoint: exact REST statuses and JSON bodies, gRPC INVALID_ARGUMENT."""

from __future__ import annotations

import grpc
import pytest
import requests

from serving.protos.generated import recommendations_pb2 as pb
from serving.protos.generated import recommendations_pb2_grpc as pb_grpc

ID_RULE = "use 1-64 characters of letters, digits and _ . : @ -"
BAD_RECOMMEND = [
    ([], "the request body must be a JSON object with fields user_id, k, latitude, longitude"),
    ({"k": 3}, "missing required field(s): user_id"),
    ({"user_id": "u1"}, "missing required field(s): k"),
    (
        {"user_id": "u1", "k": 3, "city": "x"},
        "unknown field(s) 'city'; allowed: user_id, k, latitude, longitude",
    ),
    ({"user_id": "", "k": 3}, f"user_id '' is invalid: {ID_RULE}"),
    ({"user_id": "a b", "k": 3}, f"user_id 'a b' is invalid: {ID_RULE}"),
    ({"user_id": "u" * 65, "k": 3}, f"user_id '{'u' * 65}' is invalid: {ID_RULE}"),
    ({"user_id": 7, "k": 3}, f"user_id 7 is invalid: {ID_RULE}"),
    ({"user_id": "u1", "k": 0}, "k 0 is out of range: use 1..100"),
    ({"user_id": "u1", "k": 101}, "k 101 is out of range: use 1..100"),
    ({"user_id": "u1", "k": "3"}, "k must be an integer 1..100, got '3'"),
    ({"user_id": "u1", "k": True}, "k must be an integer 1..100, got True"),
    ({"user_id": "u1", "k": 2.5}, "k must be an integer 1..100, got 2.5"),
    (
        {"user_id": "u1", "k": 3, "latitude": 10.0},
        "give latitude and longitude together, or neither",
    ),
    (
        {"user_id": "u1", "k": 3, "longitude": 10.0},
        "give latitude and longitude together, or neither",
    ),
    (
        {"user_id": "u1", "k": 3, "latitude": 90.5, "longitude": 0},
        "latitude 90.5 is out of range: use -90..90",
    ),
    (
        {"user_id": "u1", "k": 3, "latitude": 0, "longitude": -181},
        "longitude -181 is out of range: use -180..180",
    ),
    (
        {"user_id": "u1", "k": 3, "latitude": "1", "longitude": 0},
        "latitude must be a number, got '1'",
    ),
]
BAD_FEEDBACK = [
    (
        {"request_id": "r1", "user_id": "u1", "lead_id": "l1"},
        "missing required field(s): event_type",
    ),
    (
        {"request_id": "r1", "user_id": "u1", "lead_id": "l1", "event_type": "like"},
        "event_type 'like' is unknown: use one of view, click, inquiry, purchase",
    ),
    (
        {"request_id": "r 1", "user_id": "u1", "lead_id": "l1", "event_type": "view"},
        f"request_id 'r 1' is invalid: {ID_RULE}",
    ),
    (
        {"request_id": "r1", "user_id": "u1", "lead_id": "l1", "event_type": "view", "x": 1},
        "unknown field(s) 'x'; allowed: request_id, user_id, lead_id, event_type, feedback_id",
    ),
]


@pytest.fixture
def gateway(start_gateway):
    return start_gateway()


def post(gateway, path: str, **kwargs) -> requests.Response:
    return requests.post(f"{gateway.url}{path}", timeout=10, **kwargs)


def test_bad_recommendation_bodies_get_400_with_the_fix(gateway, model_server):
    for body, message in BAD_RECOMMEND:
        response = post(gateway, "/v1/recommendations", json=body)
        assert (response.status_code, response.json()) == (400, {"error": message}), body
    assert model_server.predict_calls == 0


def test_bad_feedback_bodies_get_400_with_the_fix(gateway):
    for body, message in BAD_FEEDBACK:
        response = post(gateway, "/v1/feedback", json=body)
        assert (response.status_code, response.json()) == (400, {"error": message}), body


@pytest.mark.parametrize(
    "path", ["/v1/recommendations", "/v1/feedback", "/v1/models/lead_recommender:predict"]
)
def test_transport_level_bad_input_on_every_post_endpoint(gateway, path):
    not_json = post(gateway, path, data=b"{oops", headers={"Content-Type": "application/json"})
    assert not_json.status_code == 400
    assert not_json.json()["error"].startswith("the body is not valid JSON: ")
    form = post(gateway, path, data=b"user_id=u1", headers={"Content-Type": "text/plain"})
    assert (form.status_code, form.json()) == (
        415,
        {"error": "send a JSON body with Content-Type: application/json (got 'text/plain')"},
    )
    huge = post(gateway, path, json={"user_id": "u1", "k": 3, "pad": "x" * 20000})
    assert huge.status_code == 413
    assert huge.json()["error"].endswith("the limit is 16384")


def test_unknown_paths_and_methods_answer_json(gateway):
    missing = requests.get(f"{gateway.url}/v2/nothing", timeout=5)
    assert (missing.status_code, missing.json()) == (404, {"error": "no such endpoint"})
    wrong_method = requests.get(f"{gateway.url}/v1/recommendations", timeout=5)
    assert (wrong_method.status_code, wrong_method.json()) == (405, {"error": "Method Not Allowed"})
    bad_predict = post(gateway, "/v1/models/lead_recommender/versions/x:predict", json={})
    assert bad_predict.status_code == 404
    assert bad_predict.json() == {
        "error": "no such endpoint /v1/models/lead_recommender/versions/x:predict: use "
        "/v1/models/NAME[/versions/N|/labels/LABEL]:predict"
    }


def test_bad_predict_bodies_get_400(gateway):
    path = "/v1/models/lead_recommender:predict"
    both = post(gateway, path, json={"instances": [1], "inputs": [1]})
    assert (both.status_code, both.json()) == (
        400,
        {"error": "give exactly one of 'instances' (rows) or 'inputs' (columns)"},
    )
    unknown = post(gateway, path, json={"instances": [1], "extra": 1})
    assert (unknown.status_code, unknown.json()) == (400, {"error": "unknown field(s) 'extra'"})
    missing = post(gateway, path, json={"instances": [{"user_id": "u1", "k": 3}]})
    assert (missing.status_code, missing.json()) == (
        400,
        {"error": "missing input(s): latitude, longitude"},
    )


def test_grpc_rejects_the_same_inputs_with_invalid_argument(gateway, model_server):
    with grpc.insecure_channel(gateway.grpc_target) as channel:
        stub = pb_grpc.RecommendationsStub(channel)
        cases = [
            (pb.RecommendRequest(user_id="u1", k=0), "k 0 is out of range: use 1..100"),
            (pb.RecommendRequest(k=3), f"user_id '' is invalid: {ID_RULE}"),
            (
                pb.RecommendRequest(user_id="u1", k=3, latitude=1.0),
                "give latitude and longitude together, or neither",
            ),
            (
                pb.RecommendRequest(user_id="u1", k=3, latitude=91, longitude=0),
                "latitude 91.0 is out of range: use -90..90",
            ),
        ]
        for request, message in cases:
            with pytest.raises(grpc.RpcError) as error:
                stub.Recommend(request, timeout=10)
            assert (error.value.code(), error.value.details()) == (
                grpc.StatusCode.INVALID_ARGUMENT,
                message,
            )
        with pytest.raises(grpc.RpcError) as error:
            stub.Feedback(
                pb.FeedbackRequest(request_id="r1", user_id="u1", lead_id="l1", event_type="like"),
                timeout=10,
            )
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (
            error.value.details()
            == "event_type 'like' is unknown: use one of view, click, inquiry, purchase"
        )
    assert model_server.predict_calls == 0


def test_model_servers_down_gives_503_and_unavailable(start_gateway, stub_model_server):
    gateway = start_gateway(
        model_timeout_ms=300, model_servers=(f"127.0.0.1:{stub_model_server.port}",)
    )
    stub_model_server.stop()
    response = post(gateway, "/v1/recommendations", json={"user_id": "u1", "k": 3})
    assert response.status_code == 503
    assert response.json()["error"].startswith(
        "model servers did not answer for lead_recommender version 1 (UNAVAILABLE"
    )
    assert response.json()["error"].endswith("check that they run and have the model loaded")
    with (
        grpc.insecure_channel(gateway.grpc_target) as channel,
        pytest.raises(grpc.RpcError) as error,
    ):
        pb_grpc.RecommendationsStub(channel).Recommend(
            pb.RecommendRequest(user_id="u1", k=3), timeout=10
        )
    assert error.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "model servers did not answer" in error.value.details()
