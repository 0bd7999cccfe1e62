"""Bounds on a request `TensorProto`, checked before anything is allocated for it.

A TensorProto names its shape and carries its values; TF Serving fills a tensor whose values
are one (or none) to the whole shape. A message of a few bytes can thus ask for millions of
elements. The gateway's pass-through checks every input with `check` before forwarding, and
the model server before decoding: a shape over `MAX_ELEMENTS`, or a fill over
`MAX_FILL_ELEMENTS`, is an INVALID_ARGUMENT that no replica is asked to retry.
"""

from __future__ import annotations

from tensorflow.core.framework import tensor_pb2, types_pb2

from serving.errors import invalid

MAX_ELEMENTS = 1 << 24  # one request tensor (16M elements, given value by value)
MAX_FILL_ELEMENTS = 1 << 16  # a tensor filled from one value (or none) to its shape
MAX_RANK = 32

_VALUE_FIELDS = (
    "float_val",
    "double_val",
    "int_val",
    "int64_val",
    "uint32_val",
    "uint64_val",
    "bool_val",
    "half_val",
    "string_val",
    "scomplex_val",
    "dcomplex_val",
)

VALUE_FIELD: dict[int, str] = {
    types_pb2.DT_FLOAT: "float_val",
    types_pb2.DT_DOUBLE: "double_val",
    types_pb2.DT_HALF: "half_val",
    types_pb2.DT_BFLOAT16: "half_val",
    types_pb2.DT_INT32: "int_val",
    types_pb2.DT_INT16: "int_val",
    types_pb2.DT_INT8: "int_val",
    types_pb2.DT_UINT8: "int_val",
    types_pb2.DT_UINT16: "int_val",
    types_pb2.DT_INT64: "int64_val",
    types_pb2.DT_UINT32: "uint32_val",
    types_pb2.DT_UINT64: "uint64_val",
    types_pb2.DT_BOOL: "bool_val",
    types_pb2.DT_STRING: "string_val",
    types_pb2.DT_COMPLEX64: "scomplex_val",
    types_pb2.DT_COMPLEX128: "dcomplex_val",
}
"""The typed field that carries a dtype's values (``half_val`` holds float16 bits)."""


def element_count(proto: tensor_pb2.TensorProto, key: str) -> int:
    """The shape's element count, refusing negative dimensions, a rank over `MAX_RANK` and
    more than `MAX_ELEMENTS` (multiplied step by step: no huge intermediate products). The
    dimensions other than zero are held to the same bound: an empty tensor of shape
    ``[0, 10**6, 10**6]`` has no element, but no array library can describe its shape."""
    dims = [d.size for d in proto.tensor_shape.dim]
    if len(dims) > MAX_RANK:
        raise invalid(f"input '{key}' has rank {len(dims)}; the limit is {MAX_RANK}")
    count = nonzero = 1
    for size in dims:
        if size < 0:
            raise invalid(f"input '{key}': tensor shape {dims} has a negative dimension")
        count *= size
        nonzero *= max(size, 1)
        if count > MAX_ELEMENTS or nonzero > MAX_ELEMENTS:
            raise invalid(f"input '{key}' has more than {MAX_ELEMENTS} elements (shape {dims})")
    return count


def given_values(proto: tensor_pb2.TensorProto) -> int:
    """How many values the message carries in its dtype's own field (``tensor_content``
    counts as all of them, -1); values in another field are not the tensor's."""
    if proto.tensor_content:
        return -1
    field = VALUE_FIELD.get(proto.dtype)
    if field is None:
        return max(len(getattr(proto, f)) for f in _VALUE_FIELDS)
    return len(getattr(proto, field))


def check(proto: tensor_pb2.TensorProto, key: str) -> int:
    """The element count of a request tensor within the bounds above, or INVALID_ARGUMENT."""
    count = element_count(proto, key)
    given = given_values(proto)
    if 0 <= given <= 1 < count and count > MAX_FILL_ELEMENTS:
        raise invalid(
            f"input '{key}' would be filled from {given} value(s) to {count} elements; "
            f"send the values (a fill is limited to {MAX_FILL_ELEMENTS} elements)"
        )
    return count
