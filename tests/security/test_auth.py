"""Who may call what, through the real Envoy and gateways: 401 without a valid token, 403
without the route's scope or for another user, the raw model APIs for `admin` only."""

from __future__ import annotations

import json
import time

import grpc
import jwt
import pytest
from tensorflow_serving.apis import predict_pb2

from serving import auth
from serving.envoy.runtime import admin_stats
from serving.gateway.protocol.rest import OPENAPI_FILE
from serving.protos.generated import recommendations_pb2 as pb
from serving.protos.generated import recommendations_pb2_grpc as pb_grpc

pytestmark = pytest.mark.e2e
RECOMMEND = "/v1/recommendations"
FEEDBACK = "/v1/feedback"
PREDICT = "/v1/models/lead_recommender:predict"
CACHE_HITS = "http.front.jwt_authn.jwt_cache_hit"
GRPC_PREDICT = "/tensorflow.serving.PredictionService/Predict"


def _grpc_recommend(front: str, token: str | None, user: str) -> pb.RecommendResponse:
    metadata = tuple(auth.bearer(token).items()) if token else ()
    with grpc.insecure_channel(front) as channel:
        stub = pb_grpc.RecommendationsStub(channel)
        return stub.Recommend(pb.RecommendRequest(user_id=user, k=2), timeout=10, metadata=metadata)


def _grpc_predict(front: str, token: str) -> bytes:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "lead_recommender"
    request.model_spec.signature_name = "serving_default"
    with grpc.insecure_channel(front) as channel:
        call = channel.unary_unary(GRPC_PREDICT)
        return call(
            request.SerializeToString(), timeout=10, metadata=tuple(auth.bearer(token).items())
        )


def test_no_token_is_401_with_a_json_error_and_unauthenticated_over_grpc(secure_stack) -> None:
    for path in (RECOMMEND, FEEDBACK, PREDICT):
        status, body, headers = secure_stack.post(path, {"user_id": "alice", "k": 2})
        assert status == 401, (path, body)
        assert body["error"] == "Jwt is missing"
        assert headers["content-type"] == "application/json"
    with pytest.raises(grpc.RpcError) as err:
        _grpc_recommend(secure_stack.front, None, "alice")
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_expired_and_forged_tokens_are_401(secure_stack, tmp_path) -> None:
    expired = secure_stack.token(lifetime=-120)  # past the clock skew allowance
    status, body, _ = secure_stack.post(RECOMMEND, {"user_id": "alice", "k": 2}, expired)
    assert (status, body["error"]) == (401, "Jwt is expired")
    # Same claims, signed by a key the stack does not know.
    other_key = auth.create_signing_key(tmp_path / "other.pem")
    forged = auth.issue_token(other_key, "mallory", auth.SCOPES, ["*"], 600)
    status, body, _ = secure_stack.post(RECOMMEND, {"user_id": "alice", "k": 2}, forged)
    assert status == 401, body
    with pytest.raises(grpc.RpcError) as err:
        _grpc_recommend(secure_stack.front, expired, "alice")
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_a_verified_token_is_refused_once_it_expires_though_envoy_cached_it(secure_stack) -> None:
    token = secure_stack.token(lifetime=3)
    deadline = jwt.decode(token, options={"verify_signature": False})["exp"]
    skew = secure_stack.settings.auth.clock_skew_seconds
    admin = secure_stack.settings.envoy.admin_port
    hits = admin_stats(admin, "jwt_cache_hit").get(CACHE_HITS, 0)
    for _ in range(6):  # every Envoy worker has verified it: later requests are cache hits
        status, body, _ = secure_stack.post(RECOMMEND, {"user_id": "alice", "k": 2}, token)
        assert status == 200, body
    assert admin_stats(admin, "jwt_cache_hit")[CACHE_HITS] > hits
    time.sleep(max(0.0, deadline + skew + 1.5 - time.time()))
    for _ in range(4):
        status, body, _ = secure_stack.post(RECOMMEND, {"user_id": "alice", "k": 2}, token)
        assert (status, body["error"]) == (401, "Jwt is expired")


def test_a_token_without_the_routes_scope_is_403(secure_stack) -> None:
    feedback_only = secure_stack.token(scopes=(auth.SCOPE_FEEDBACK,))
    status, body, _ = secure_stack.post(RECOMMEND, {"user_id": "alice", "k": 2}, feedback_only)
    assert (status, body["error"]) == (403, "RBAC: access denied")
    recommend_only = secure_stack.token(scopes=(auth.SCOPE_RECOMMEND,))
    body = {
        "request_id": "r1.s.abc.0000.0000000000000000",
        "user_id": "alice",
        "lead_id": "lead-1",
        "event_type": "click",
    }
    assert secure_stack.post(FEEDBACK, body, recommend_only)[0] == 403
    with pytest.raises(grpc.RpcError) as err:
        _grpc_recommend(secure_stack.front, feedback_only, "alice")
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_another_users_recommendations_and_feedback_are_403(secure_stack) -> None:
    alice = secure_stack.token(users=("alice",), subject="alice-app")
    status, answer, _ = secure_stack.post(RECOMMEND, {"user_id": "alice", "k": 2}, alice)
    assert status == 200 and len(answer["items"]) == 2
    status, body, _ = secure_stack.post(RECOMMEND, {"user_id": "bob", "k": 2}, alice)
    assert status == 403
    assert "may not act for user 'bob'" in body["error"]
    # Feedback names its user too: alice's token cannot post feedback as bob, even with
    # a request id issued to bob.
    bob_answer = secure_stack.post(RECOMMEND, {"user_id": "bob", "k": 2}, secure_stack.token())[1]
    feedback = {
        "request_id": bob_answer["request_id"],
        "user_id": "bob",
        "lead_id": bob_answer["items"][0]["lead_id"],
        "event_type": "click",
    }
    assert secure_stack.post(FEEDBACK, feedback, alice)[0] == 403
    # The same rule over gRPC.
    assert len(_grpc_recommend(secure_stack.front, alice, "alice").items) == 2
    with pytest.raises(grpc.RpcError) as err:
        _grpc_recommend(secure_stack.front, alice, "bob")
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_raw_model_apis_need_admin(secure_stack) -> None:
    user_token = secure_stack.token(scopes=(auth.SCOPE_RECOMMEND, auth.SCOPE_FEEDBACK))
    body = {"instances": [{"user_id": "alice", "latitude": 0.0, "longitude": 0.0, "k": 2}]}
    assert secure_stack.post(PREDICT, body, user_token)[0] == 403
    with pytest.raises(grpc.RpcError) as err:
        _grpc_predict(secure_stack.front, user_token)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # With admin the request reaches the gateway's pass-through (here: a wrong input, its 400).
    admin = secure_stack.token(scopes=(auth.SCOPE_ADMIN,))
    status, answer, _ = secure_stack.post(PREDICT, {"instances": [1]}, admin)
    assert status == 400, answer


def test_the_openapi_description_is_public_and_the_committed_file(secure_stack) -> None:
    import urllib.request

    with urllib.request.urlopen(f"http://{secure_stack.front}/openapi.json", timeout=10) as r:
        served = json.loads(r.read())
    assert served == json.loads(OPENAPI_FILE.read_text())
    assert set(served["paths"]) == {
        RECOMMEND,
        FEEDBACK,
        PREDICT.replace("lead_recommender", "{model}"),
        "/openapi.json",
    }


def test_the_development_token_has_every_scope_for_every_user(secure_stack) -> None:
    stack = secure_stack.stack
    token_file = auth.dev_token_path(stack.settings.run_dir)
    assert token_file.stat().st_mode & 0o777 == 0o600
    assert (token_file.parent / auth.SIGNING_KEY_FILE).stat().st_mode & 0o777 == 0o600
    assert auth.read_token(token_file) == stack.token
    status, answer, _ = secure_stack.post(RECOMMEND, {"user_id": "anyone", "k": 1}, stack.token)
    assert status == 200 and answer["items"]
    payload = json.loads(__import__("base64").urlsafe_b64decode(stack.token.split(".")[1] + "=="))
    assert payload["scope"].split() == list(auth.SCOPES) and payload["users"] == ["*"]
    assert payload["exp"] - payload["iat"] == int(stack.settings.auth.dev_token_hours * 3600)
    assert payload["exp"] > time.time()
