"""TF Serving's REST JSON formats: request bodies to inputs/examples, outputs to JSON values.

Row format (`instances`): a list, one entry per example, each a value (one-input signatures)
or an object of named inputs. Columnar format (`inputs`): a value or an object of named
inputs, each batched already. Binary strings travel as `{"b64": "..."}` both ways; string
outputs whose name ends in `_bytes` are always base64-encoded.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import tensorflow as tf
from tensorflow.core.example import example_pb2, feature_pb2
from tensorflow_serving.apis import input_pb2

from serving.errors import invalid
from serving.model_server.servable import Signature

MAX_INSTANCES = 100_000
# The JSON keys of TF Serving's REST API (`tensorflow_serving/util/json_tensor.cc`).
INSTANCES_KEY = "instances"  # predict request, row format
INPUTS_KEY = "inputs"  # predict request, columnar format
SIGNATURE_NAME_KEY = "signature_name"
EXAMPLES_KEY = "examples"  # classify / regress request
CONTEXT_KEY = "context"  # classify / regress request, features shared by every example
PREDICTIONS_KEY = "predictions"  # predict answer to a row-format request
OUTPUTS_KEY = "outputs"  # predict answer to a columnar request
RESULTS_KEY = "results"  # classify and regress answers
ERROR_KEY = "error"


def _decode(value: object, key: str) -> object:
    """JSON value -> Python value with `{"b64"}` decoded to bytes and strings to UTF-8 bytes."""
    if isinstance(value, dict):
        if set(value) != {"b64"} or not isinstance(value["b64"], str):
            raise invalid(f'input \'{key}\': objects are only allowed as {{"b64": "..."}}')
        try:
            return base64.b64decode(value["b64"], validate=True)
        except binascii.Error as e:
            raise invalid(f"input '{key}': bad base64 in b64 value: {e}") from e
    if isinstance(value, list):
        return [_decode(v, key) for v in value]
    if isinstance(value, str):
        return value.encode()
    if value is None:
        raise invalid(f"input '{key}': null is not a tensor value")
    return value


def _array(value: object, key: str, dtype: tf.DType) -> npt.NDArray[Any]:
    decoded = _decode(value, key)
    try:
        tensor = tf.convert_to_tensor(decoded, dtype=dtype)
    except (TypeError, ValueError) as e:
        raise invalid(
            f"input '{key}' cannot be read as a {dtype.name} tensor "
            f"(check the type and that lists are rectangular): {e}"
        ) from e
    array: npt.NDArray[Any] = tensor.numpy()
    return array


def row_inputs(instances: object, signature: Signature) -> dict[str, npt.NDArray[Any]]:
    """Inputs of a row-format (`instances`) request for `signature`."""
    if not isinstance(instances, list) or not instances:
        raise invalid("'instances' must be a non-empty JSON list")
    if len(instances) > MAX_INSTANCES:
        raise invalid(f"{len(instances)} instances; the limit is {MAX_INSTANCES}")
    keys = signature.input_keys
    named = isinstance(instances[0], dict) and set(instances[0]) != {"b64"}
    if not named:
        if len(keys) != 1:
            raise invalid(
                f"instances must be objects naming each input, the signature has "
                f"{len(keys)} inputs: {', '.join(keys)}"
            )
        return {keys[0]: _array(instances, keys[0], signature.input_dtypes[keys[0]])}
    columns: dict[str, list[object]] = {}
    for i, instance in enumerate(instances):
        if not isinstance(instance, dict) or set(instance) != set(instances[0]):
            raise invalid(
                f"instance {i}: every instance must be an object with the same keys as the "
                f"first ({', '.join(sorted(instances[0]))})"
            )
        for key, value in instance.items():
            columns.setdefault(key, []).append(value)
    _known_inputs(columns, keys, "instances")
    return {k: _array(v, k, signature.input_dtypes[k]) for k, v in columns.items()}


def _known_inputs(names: Iterable[str], keys: Sequence[str], field: str) -> None:
    """INVALID_ARGUMENT when the request's ``field`` names an input the signature lacks."""
    unknown = set(names) - set(keys)
    if unknown:
        raise invalid(
            f"{field} name unknown inputs {sorted(unknown)}; the signature takes {', '.join(keys)}"
        )


def columnar_inputs(inputs: object, signature: Signature) -> dict[str, npt.NDArray[Any]]:
    """Inputs of a columnar (`inputs`) request for `signature`."""
    keys = signature.input_keys
    if isinstance(inputs, dict) and set(inputs) != {"b64"}:
        _known_inputs(inputs, keys, "inputs")
        return {k: _array(v, k, signature.input_dtypes[k]) for k, v in inputs.items()}
    if len(keys) != 1:
        raise invalid(
            f"'inputs' must be an object naming each input, the signature has {len(keys)} "
            f"inputs: {', '.join(keys)}"
        )
    return {keys[0]: _array(inputs, keys[0], signature.input_dtypes[keys[0]])}


def _float32_list(array: npt.NDArray[Any]) -> Any:
    """float32 values as the shortest decimals that round-trip (2.5, 0.1; not 0.10000000149)."""
    flat = [float(repr(v)) for v in array.ravel()]
    return np.array(flat, dtype=object).reshape(array.shape).tolist()


def _string_list(array: npt.NDArray[Any], always_b64: bool) -> Any:
    def one(v: bytes) -> str | dict[str, str]:
        if not always_b64:
            try:
                return v.decode()
            except UnicodeDecodeError:
                pass
        return {"b64": base64.b64encode(v).decode()}

    flat = [one(v) for v in array.ravel()]
    return np.array(flat, dtype=object).reshape(array.shape).tolist()


def to_json(key: str, array: npt.NDArray[Any]) -> Any:
    """A JSON-ready nested list (or scalar) for output `key` (`tolist()`'s type: Any)."""
    if array.dtype.kind in "OS":
        return _string_list(array, key.endswith("_bytes"))
    if array.dtype == np.float32:
        return _float32_list(array)
    return array.tolist()


def row_outputs(outputs: dict[str, npt.NDArray[Any]]) -> Any:
    """The `predictions` list: per-row values, or per-row objects for several outputs."""
    sizes = {k: (v.shape[0] if v.ndim else None) for k, v in outputs.items()}
    batch = next(iter(sizes.values()), None)
    for key, size in sizes.items():
        if size is None or size != batch:
            raise invalid(
                f"Tensor name: {key} has inconsistent batch size: {size} expecting: {batch}"
            )
    columns = {k: to_json(k, v) for k, v in outputs.items()}
    if len(columns) == 1:
        return next(iter(columns.values()))
    return [{k: columns[k][i] for k in columns} for i in range(batch or 0)]


def columnar_outputs(outputs: dict[str, npt.NDArray[Any]]) -> Any:
    """The `outputs` value: the tensor itself for one output, else an object by name."""
    columns = {k: to_json(k, v) for k, v in outputs.items()}
    return next(iter(columns.values())) if len(columns) == 1 else columns


def _floats(values: list[object]) -> list[float] | None:
    """`values` as floats when every one is a number (a bool is not), else None."""
    out: list[float] = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return None
        out.append(float(v))
    return out


def _feature(value: object, key: str) -> feature_pb2.Feature:
    values = value if isinstance(value, list) else [value]
    decoded = [_decode(v, key) for v in values]
    feature = feature_pb2.Feature()
    if all(isinstance(v, bytes) for v in decoded):
        feature.bytes_list.value.extend(decoded)
    elif all(isinstance(v, int) and not isinstance(v, bool) for v in decoded):
        feature.int64_list.value.extend(decoded)
    elif (numbers := _floats(decoded)) is not None:
        feature.float_list.value.extend(numbers)
    else:
        raise invalid(f"feature '{key}': values must be all numbers or all strings")
    return feature


def _example(obj: object, where: str) -> example_pb2.Example:
    if not isinstance(obj, dict):
        raise invalid(f"{where} must be a JSON object of feature name -> value(s)")
    example = example_pb2.Example()
    for key, value in obj.items():
        example.features.feature[key].CopyFrom(_feature(value, key))
    return example


def examples_input(body: dict[str, Any]) -> input_pb2.Input:
    """The `Input` proto of a `:classify` / `:regress` body (`examples`, optional `context`)."""
    examples = body.get(EXAMPLES_KEY)
    if not isinstance(examples, list) or not examples:
        raise invalid("'examples' must be a non-empty JSON list of objects")
    if len(examples) > MAX_INSTANCES:
        raise invalid(f"{len(examples)} examples; the limit is {MAX_INSTANCES}")
    out = input_pb2.Input()
    if CONTEXT_KEY in body:
        target = out.example_list_with_context
        target.context.CopyFrom(_example(body[CONTEXT_KEY], f"'{CONTEXT_KEY}'"))
    else:
        target = out.example_list
    for i, ex in enumerate(examples):
        target.examples.add().CopyFrom(_example(ex, f"example {i}"))
    return out
