"""Hypothesis on the request parsers and the tensor decoding: any input is either accepted
or refused as INVALID_ARGUMENT (a 400), never another exception (a 500). Bounded budgets."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

from serving import json_limits, tensor_bounds
from serving.errors import Code, ServingError
from serving.gateway.validation import ID_PATTERN, parse_feedback, parse_recommend
from serving.model_server import tensors

BUDGET = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=80),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=30,
)
request_like = st.fixed_dictionaries(
    {},
    optional={
        "user_id": json_values | st.from_regex(ID_PATTERN, fullmatch=True),
        "k": json_values | st.integers(-5, 200),
        "latitude": json_values,
        "longitude": json_values,
        "request_id": json_values | st.text(max_size=70),
        "lead_id": json_values,
        "event_type": json_values | st.sampled_from(["view", "click", "inquiry", "purchase"]),
        "feedback_id": json_values,
    },
)


def _accepted_or_invalid(fn, value) -> object | None:
    try:
        return fn(value)
    except ServingError as e:
        assert e.code == Code.INVALID_ARGUMENT, e
        assert e.message
        return None


@BUDGET
@given(st.one_of(request_like, json_values))
def test_request_parsers_accept_or_refuse_as_invalid_argument(body) -> None:
    recommend = _accepted_or_invalid(parse_recommend, body)
    if recommend is not None:
        assert ID_PATTERN.fullmatch(recommend.user_id) and 1 <= recommend.k <= 100
    feedback = _accepted_or_invalid(parse_feedback, body)
    if feedback is not None:
        assert all(ID_PATTERN.fullmatch(v) for v in (feedback.user_id, feedback.lead_id))


@BUDGET
@given(
    st.text(alphabet="\n\r\t \x00\x0b", min_size=1, max_size=3),
    st.sampled_from(["user1", "a" * 64]),
)
def test_ids_with_trailing_control_characters_are_refused(suffix, base) -> None:
    # `re.match` with `$` let "user1\n" through; fullmatch refuses it.
    for body in ({"user_id": base + suffix, "k": 1}, {"user_id": suffix + base, "k": 1}):
        assert _accepted_or_invalid(parse_recommend, body) is None


@BUDGET
@given(st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()))
def test_json_bodies_decode_or_are_invalid(raw) -> None:
    _accepted_or_invalid(json_limits.loads, raw)


@given(st.integers(1, 20_000), st.sampled_from("[{"))
@settings(max_examples=40, deadline=None)
def test_deep_json_is_a_400_not_a_recursion_error(depth, opener) -> None:
    closer = {"[": "]", "{": "}"}[opener]
    inner = '"a":' if opener == "{" else ""
    raw = (opener + inner) * depth + "1" + closer * depth
    if opener == "{":
        raw = ("{" + '"a":') * depth + "1" + "}" * depth
    value = _accepted_or_invalid(json_limits.loads, raw)
    assert (value is not None) == (depth <= json_limits.MAX_DEPTH)


DTYPES = [types_pb2.DT_FLOAT, types_pb2.DT_INT64, types_pb2.DT_STRING, types_pb2.DT_BOOL,
          types_pb2.DT_HALF, types_pb2.DT_INT32, types_pb2.DT_INVALID, 999]  # fmt: skip


@st.composite
def tensor_protos(draw) -> tensor_pb2.TensorProto:
    proto = tensor_pb2.TensorProto()
    proto.dtype = draw(st.sampled_from(DTYPES))
    dims = draw(
        st.lists(st.integers(-2, 1 << 22), max_size=6) | st.lists(st.integers(0, 4), max_size=40)
    )
    proto.tensor_shape.CopyFrom(
        tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in dims]
        )
    )
    count = draw(st.integers(0, 8))
    field = draw(
        st.sampled_from(["float_val", "int64_val", "string_val", "bool_val", "int_val", "content"])
    )
    if field == "content":
        proto.tensor_content = draw(st.binary(max_size=64))
    elif field == "string_val":
        proto.string_val.extend(
            draw(st.lists(st.binary(max_size=8), min_size=count, max_size=count))
        )
    elif field == "float_val":
        proto.float_val.extend([1.5] * count)
    elif field == "bool_val":
        proto.bool_val.extend([True] * count)
    else:
        getattr(proto, field).extend([7] * count)
    return proto


@BUDGET
@given(tensor_protos())
def test_tensor_decoding_accepts_or_refuses_and_never_fills_beyond_the_bound(proto) -> None:
    array = _accepted_or_invalid(lambda p: tensors.from_proto(p, "x"), proto)
    if array is not None:
        assert isinstance(array, np.ndarray)
        assert array.size <= max(tensor_bounds.MAX_FILL_ELEMENTS, tensor_bounds.given_values(proto))
        assert list(array.shape) == [d.size for d in proto.tensor_shape.dim]


def _float_shape(*dims: int) -> tensor_pb2.TensorProto:
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT)
    for size in dims:
        proto.tensor_shape.dim.add(size=size)
    return proto


def _refused_as_invalid(proto: tensor_pb2.TensorProto, words: str) -> None:
    with pytest.raises(ServingError) as refused:
        tensors.from_proto(proto, "x")
    assert refused.value.code == Code.INVALID_ARGUMENT and words in refused.value.message


def test_a_shape_with_no_values_is_refused_before_any_allocation() -> None:
    # 16M elements from a 20-byte message.
    _refused_as_invalid(_float_shape(4096, 4096), "filled from 0 value(s)")


def test_an_empty_tensor_with_huge_other_dimensions_is_refused() -> None:
    # Found by the fuzzer above: zero elements, but numpy cannot describe the shape.
    _refused_as_invalid(_float_shape(0, 4097, 30939, 134572, 135177), "more than")
    # A plain empty tensor is fine.
    assert tensors.from_proto(_float_shape(0, 64, 64), "x").shape == (0, 64, 64)
