"""numpy <-> `TensorProto` conversion, filling the typed `*_val` fields like TF Serving does."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

from serving import tensor_bounds
from serving.errors import invalid

MAX_ELEMENTS = tensor_bounds.MAX_ELEMENTS  # bound on one request tensor (16M elements)

_NP_TO_DT: dict[np.dtype[Any], int] = {
    np.dtype(np.float32): types_pb2.DT_FLOAT,
    np.dtype(np.float64): types_pb2.DT_DOUBLE,
    np.dtype(np.int32): types_pb2.DT_INT32,
    np.dtype(np.int64): types_pb2.DT_INT64,
    np.dtype(np.int16): types_pb2.DT_INT16,
    np.dtype(np.int8): types_pb2.DT_INT8,
    np.dtype(np.uint8): types_pb2.DT_UINT8,
    np.dtype(np.uint16): types_pb2.DT_UINT16,
    np.dtype(np.uint32): types_pb2.DT_UINT32,
    np.dtype(np.uint64): types_pb2.DT_UINT64,
    np.dtype(np.bool_): types_pb2.DT_BOOL,
    np.dtype(np.float16): types_pb2.DT_HALF,
}
_DT_TO_NP: dict[int, np.dtype[Any]] = {v: k for k, v in _NP_TO_DT.items()}


def to_proto(array: NDArray[Any]) -> tensor_pb2.TensorProto:
    """A `TensorProto` with dtype, shape and the typed value field (`AsProtoField` style)."""
    proto = tensor_pb2.TensorProto()
    proto.tensor_shape.CopyFrom(
        tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in array.shape]
        )
    )
    if array.dtype.kind in ("O", "S", "U"):
        proto.dtype = types_pb2.DT_STRING
        proto.string_val.extend(
            v if isinstance(v, bytes) else str(v).encode() for v in array.ravel().tolist()
        )
        return proto
    dtype = _NP_TO_DT.get(array.dtype)
    if dtype is None:
        raise invalid(f"output dtype {array.dtype} cannot be returned")
    proto.dtype = dtype
    if dtype == types_pb2.DT_HALF:
        proto.half_val.extend(array.ravel().view(np.uint16).tolist())
    else:
        getattr(proto, tensor_bounds.VALUE_FIELD[dtype]).extend(array.ravel().tolist())
    return proto


def _dtype_name(dtype: int) -> str:
    """The enum name of a dtype, or its number when the enum has none (a fuzzed message)."""
    try:
        return str(types_pb2.DataType.Name(dtype))
    except ValueError:
        return f"number {dtype}"


def from_proto(proto: tensor_pb2.TensorProto, key: str) -> NDArray[Any]:
    """The numpy value of a request `TensorProto`; INVALID_ARGUMENT when malformed."""
    shape = [d.size for d in proto.tensor_shape.dim]
    count = tensor_bounds.check(proto, key)  # before anything is allocated for it
    if proto.dtype == types_pb2.DT_STRING:
        strings: list[bytes] = list(proto.string_val)
        if len(strings) <= 1 < count and count > tensor_bounds.MAX_FILL_ELEMENTS:
            raise invalid(f"input '{key}' would be filled from {len(strings)} string(s) to {count}")
        if len(strings) == 1 and count != 1:
            strings = strings * count
        if len(strings) != count:
            raise invalid(f"input '{key}': {len(strings)} strings for shape {shape}")
        return np.array(strings, dtype=object).reshape(shape)
    np_dtype = _DT_TO_NP.get(proto.dtype)
    if np_dtype is None:
        raise invalid(f"input '{key}': unsupported dtype {_dtype_name(proto.dtype)}")
    if proto.tensor_content:
        if len(proto.tensor_content) != count * np_dtype.itemsize:
            raise invalid(f"input '{key}': tensor_content size does not match shape {shape}")
        return np.frombuffer(proto.tensor_content, dtype=np_dtype).reshape(shape)
    values: NDArray[Any]
    if proto.dtype == types_pb2.DT_HALF:
        values = np.array(proto.half_val, dtype=np.uint16).view(np.float16)
    else:
        values = np.array(getattr(proto, tensor_bounds.VALUE_FIELD[proto.dtype]), dtype=np_dtype)
    if values.size <= 1 < count and count > tensor_bounds.MAX_FILL_ELEMENTS:
        raise invalid(
            f"input '{key}' would be filled from {values.size} value(s) to {count} elements; "
            f"send the values (a fill is limited to {tensor_bounds.MAX_FILL_ELEMENTS} elements)"
        )
    if values.size == 1 and count != 1:
        values = np.full(count, values[0], dtype=np_dtype)
    if values.size == 0 and count:
        values = np.zeros(count, dtype=np_dtype)
    if values.size != count:
        raise invalid(f"input '{key}': {values.size} values for shape {shape}")
    return values.reshape(shape)
