"""Caching pass-through of TF Serving's Predict API (gRPC bytes and REST JSON).

A Predict request is pinned to a concrete version (its explicit version, its label as the
gateway resolves it, or the latest) and keyed by model, version and its deterministic
serialization, so REST and gRPC callers share cache entries and a new version changes every
key. Requests for other models, or labels the gateway does not track, are forwarded uncached.
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

import numpy as np
import numpy.typing as npt
from google.protobuf.message import DecodeError
from tensorflow.core.framework import tensor_pb2
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2

from serving import tensor_bounds
from serving.errors import invalid, not_found
from serving.gateway.cache import KEY_PREFIX, CachingLoader, Loaded, Source
from serving.gateway.dataplane import DataPlane
from serving.gateway.model_client import ModelClient

REST_PATH = re.compile(
    r"^(?P<name>[A-Za-z0-9_.-]{1,64})"
    r"(?:/versions/(?P<version>\d{1,18})|/labels/(?P<label>[A-Za-z0-9_.-]{1,64}))?:predict$"
)
_METADATA_CACHE = 64


class PredictPassThrough:
    """Predict for TF Serving clients, with the gateway's cache in front of the model servers."""

    def __init__(self, model: ModelClient, dataplane: DataPlane, loader: CachingLoader) -> None:
        self._model, self._dataplane, self._loader = model, dataplane, loader
        self._signatures: dict[int, get_model_metadata_pb2.SignatureDefMap] = {}

    async def _pin(self, request: predict_pb2.PredictRequest) -> int | None:
        spec = request.model_spec
        if spec.name != self._model.model_name:
            return None
        if spec.HasField("version"):
            version: int = spec.version.value
            return version
        view = await self._dataplane.versions()
        if spec.version_label:
            return dict(view.labels).get(spec.version_label)
        return view.latest if view.latest is not None else view.resolve("stable")[1]

    async def predict(self, request_bytes: bytes) -> Loaded:
        """The serialized PredictResponse for a serialized PredictRequest."""
        request = predict_pb2.PredictRequest()
        try:
            request.ParseFromString(request_bytes)
        except DecodeError as e:
            raise invalid(f"the body is not a PredictRequest: {e}") from e
        for name, tensor in request.inputs.items():  # before any replica is asked
            tensor_bounds.check(tensor, name)
        version = await self._pin(request)
        if version is None:
            return Loaded(await self._model.predict_raw(request_bytes), Source.NONE)
        request.model_spec.ClearField("version_label")
        request.model_spec.version.value = version
        pinned = request.SerializeToString(deterministic=True)
        digest = hashlib.sha256(pinned).hexdigest()[:40]
        key = f"{KEY_PREFIX}:predict:{request.model_spec.name}:{version}:{digest}"
        return await self._loader.load("predict", key, lambda: self._model.predict_raw(pinned))

    async def predict_json(self, path_tail: str, body: object) -> tuple[dict[str, Any], Source]:
        """TF Serving's REST `:predict` through the cache: the JSON answer and its cache source."""
        match = REST_PATH.match(path_tail)
        if not match:
            raise not_found(
                f"no such endpoint /v1/models/{path_tail}: use "
                "/v1/models/NAME[/versions/N|/labels/LABEL]:predict"
            )
        if not isinstance(body, dict):
            raise invalid("the body must be a JSON object with instances or inputs")
        unknown = sorted(set(body) - {"signature_name", "instances", "inputs"})
        if unknown:
            raise invalid(f"unknown field(s) {', '.join(map(repr, unknown))}")
        if ("instances" in body) == ("inputs" in body):
            raise invalid("give exactly one of 'instances' (rows) or 'inputs' (columns)")
        request = predict_pb2.PredictRequest()
        request.model_spec.name = match["name"]
        signature_name = body.get("signature_name", "serving_default")
        if not isinstance(signature_name, str):
            raise invalid("signature_name must be a string")
        request.model_spec.signature_name = signature_name
        if match["version"]:
            request.model_spec.version.value = int(match["version"])
        elif match["label"]:
            request.model_spec.version_label = match["label"]
        version = await self._pin(request)
        if version is None:
            raise not_found(
                f"model {match['name']!r} with label {match['label']!r} is not served by this "
                f"gateway: it caches {self._model.model_name!r} with labels stable and canary"
            )
        signature = await self._signature(version, signature_name)
        rows = "instances" in body
        for name, tensor in _request_tensors(body, signature, rows).items():
            request.inputs[name].CopyFrom(tensor)
        loaded = await self.predict(request.SerializeToString())
        response = predict_pb2.PredictResponse()
        response.ParseFromString(loaded.value)
        return _response_json(response, rows), loaded.source

    async def _signature(self, version: int, signature_name: str) -> meta_graph_pb2.SignatureDef:
        if version not in self._signatures:
            metadata = await self._model.metadata(version)
            signatures = get_model_metadata_pb2.SignatureDefMap()
            metadata.metadata["signature_def"].Unpack(signatures)
            if len(self._signatures) >= _METADATA_CACHE:
                self._signatures.clear()
            self._signatures[version] = signatures
        signatures = self._signatures[version].signature_def
        if signature_name not in signatures:
            raise invalid(
                f"serving signature {signature_name!r} not found; the model has "
                f"{', '.join(sorted(n for n in signatures if not n.startswith('__')))}"
            )
        return signatures[signature_name]


def _decode_strings(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode_strings(v) for v in value]
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    if isinstance(value, str):
        return value.encode()
    return value


def _tensor(name: str, values: object, dtype: int) -> tensor_pb2.TensorProto:
    import tensorflow as tf

    tf_dtype = tf.dtypes.as_dtype(dtype)
    try:
        if tf_dtype == tf.string:
            array = np.array(_decode_strings(values), dtype=object)
        else:
            array = np.array(values, dtype=tf_dtype.as_numpy_dtype)
        return tf.make_tensor_proto(array, dtype=tf_dtype)
    except (ValueError, TypeError) as e:
        raise invalid(f"input {name!r} is not a valid {tf_dtype.name} tensor: {e}") from e


def _request_tensors(
    body: dict[str, Any], signature: meta_graph_pb2.SignatureDef, rows: bool
) -> dict[str, tensor_pb2.TensorProto]:
    inputs = dict(signature.inputs)
    if rows:
        instances = body["instances"]
        if not isinstance(instances, list) or not instances:
            raise invalid("instances must be a non-empty list of rows")
        if all(isinstance(row, dict) and "b64" not in row for row in instances):
            columns = {name: [row.get(name) for row in instances] for name in inputs}
        elif len(inputs) == 1:
            columns = {next(iter(inputs)): instances}
        else:
            raise invalid(f"each instance must be an object with {', '.join(inputs)}")
    else:
        given = body["inputs"]
        if isinstance(given, dict) and set(given) <= set(inputs) and "b64" not in given:
            columns = given
        elif len(inputs) == 1:
            columns = {next(iter(inputs)): given}
        else:
            raise invalid(f"inputs must be an object with {', '.join(inputs)}")
    missing = sorted(n for n in inputs if n not in columns or None in _flat(columns[n]))
    if missing:
        raise invalid(f"missing input(s): {', '.join(missing)}")
    unknown = sorted(set(columns) - set(inputs))
    if unknown:
        raise invalid(f"unknown input(s): {', '.join(unknown)}")
    return {name: _tensor(name, columns[name], inputs[name].dtype) for name in inputs}


def _flat(values: object) -> list[object]:
    return values if isinstance(values, list) else [values]


def _json_value(array: npt.NDArray[Any], name: str) -> Any:
    if array.dtype == object:
        if name.endswith("_bytes"):
            encode = np.vectorize(lambda b: {"b64": base64.b64encode(b).decode()}, otypes=[object])
        else:
            encode = np.vectorize(lambda b: b.decode("utf-8", "replace"), otypes=[object])
        return encode(array).tolist() if array.size else array.tolist()
    return array.tolist()


def _response_json(response: predict_pb2.PredictResponse, rows: bool) -> dict[str, Any]:
    import tensorflow as tf

    arrays = {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}
    if not rows:
        if len(arrays) == 1:
            ((name, array),) = arrays.items()
            return {"outputs": _json_value(array, name)}
        return {"outputs": {name: _json_value(a, name) for name, a in arrays.items()}}
    if len(arrays) == 1:
        ((name, array),) = arrays.items()
        return {"predictions": _json_value(array, name)}
    batch = min(a.shape[0] if a.ndim else 1 for a in arrays.values())
    values = {name: _json_value(a, name) for name, a in arrays.items()}
    return {"predictions": [{name: values[name][i] for name in values} for i in range(batch)]}
