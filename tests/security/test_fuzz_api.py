"""Fuzzing the running stack through Envoy, with bounded budgets: schemathesis from the
served OpenAPI description (REST), and hypothesis on the gRPC Predict pass-through with
malformed and oversized protos. Zero 5xx, every rejection a clear 4xx (a JSON error) or
INVALID_ARGUMENT-like status."""

from __future__ import annotations

import grpc
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tensorflow_serving.apis import predict_pb2

from serving import auth
from serving.gateway.protocol.rest import OPENAPI_FILE
from tests.security.test_fuzz_parsers import tensor_protos

pytestmark = pytest.mark.e2e
PREDICT = "/tensorflow.serving.PredictionService/Predict"
REST_EXAMPLES = 60  # per operation
GRPC_EXAMPLES = 150
# Statuses a bad Predict may get: the input's fault, never the server's.
CLIENT_CODES = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.RESOURCE_EXHAUSTED,  # over the gateway's 4 MiB message limit
}


# The committed description, which the stack serves at /openapi.json (test_auth checks they
# are the same); requests go to the running stack's front door.
schema = schemathesis.openapi.from_path(str(OPENAPI_FILE))


@schema.parametrize()
@settings(max_examples=REST_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_rest_api_fuzzed_from_its_openapi(case, secure_stack) -> None:
    # The generated security header is replaced by the stack's development token.
    case.headers = {**(case.headers or {}), "Authorization": f"Bearer {secure_stack.stack.token}"}
    response = case.call(base_url=f"http://{secure_stack.front}", timeout=30)
    assert response.status_code < 500, (case.path, case.body, response.text[:300])
    if response.status_code >= 400:
        content_type = response.headers.get("content-type") or response.headers.get("Content-Type")
        assert "application/json" in str(content_type), (response.status_code, response.text)
        answer = response.json()
        # Envoy's own refusals (a malformed request) say why in details when the body is empty.
        assert answer["error"] or answer.get("details"), (case.path, case.headers, response.text)


@st.composite
def predict_messages(draw) -> bytes:
    kind = draw(st.sampled_from(["bytes", "request", "truncated"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    request = predict_pb2.PredictRequest()
    request.model_spec.name = draw(st.sampled_from(["lead_recommender", "other", ""]))
    request.model_spec.signature_name = draw(st.sampled_from(["serving_default", "recommend", "x"]))
    if draw(st.booleans()):
        request.model_spec.version_label = draw(st.sampled_from(["stable", "canary", "nope"]))
    names = draw(
        st.lists(st.sampled_from(["user_id", "k", "latitude", "longitude", "x"]), max_size=4)
    )
    for name in names:
        request.inputs[name].CopyFrom(draw(tensor_protos()))
    raw = request.SerializeToString()
    if kind == "truncated" and raw:
        return raw[: draw(st.integers(0, len(raw) - 1))]
    return raw


def test_grpc_predict_pass_through_fuzzed(secure_stack) -> None:
    metadata = tuple(auth.bearer(secure_stack.stack.token).items())
    seen: dict[str, int] = {}
    with grpc.insecure_channel(secure_stack.front) as channel:
        call = channel.unary_unary(PREDICT)

        @settings(
            max_examples=GRPC_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck)
        )
        @given(predict_messages())
        def fuzz(message: bytes) -> None:
            try:
                call(message, timeout=30, metadata=metadata)
                code = grpc.StatusCode.OK
            except grpc.RpcError as e:
                code = e.code()
                assert e.details(), "a rejection without a message"
            seen[code.name] = seen.get(code.name, 0) + 1
            assert code in CLIENT_CODES, (code, message[:80])

        fuzz()
        # Oversized: a shape of 2^40 elements, a 16M fill, and a message over the limit.
        for dims in ([1 << 20, 1 << 20], [4096, 4096]):
            request = predict_pb2.PredictRequest()
            request.model_spec.name = "lead_recommender"
            tensor = request.inputs["user_id"]
            tensor.dtype = 7  # DT_STRING
            for d in dims:
                tensor.tensor_shape.dim.add(size=d)
            with pytest.raises(grpc.RpcError) as err:
                call(request.SerializeToString(), timeout=30, metadata=metadata)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
        with pytest.raises(grpc.RpcError) as err:
            call(b"\x0a" + b"\xff" * (5 << 20), timeout=30, metadata=metadata)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    print(f"gRPC Predict fuzz: {seen}")
