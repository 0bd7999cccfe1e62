"""One loaded SavedModel version: its signatures, their metadata, and calls into TensorFlow.

TF1 (graph) and TF2 SavedModels both load into a Session from their `MetaGraphDef` and run
each signature by its feed and fetch tensor names, as TF Serving does; signature metadata
comes from the same `MetaGraphDef`, exactly what TF Serving reports. Like TF Serving's
session feeds, only dtypes are enforced: shapes are the graph's business.
"""

from __future__ import annotations

import dataclasses
import pathlib
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import tensorflow as tf
from google.protobuf import text_format
from tensorflow.core.protobuf import config_pb2, meta_graph_pb2, saved_model_pb2
from tensorflow.python.util import deprecation
from tensorflow_serving.apis import get_model_metadata_pb2

from serving.errors import Code, ServingError, invalid, not_found

SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")
SERVING_TAG = "serve"
DEFAULT_SIGNATURE = "serving_default"
PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
MAX_STEP_CALLABLES = 64  # feed/fetch sets kept per version (MultiInference task sets)


def is_complete_version_dir(path: pathlib.Path) -> bool:
    """True once the SavedModel's graph file is there (a version still being copied is not)."""
    return any((path / name).is_file() for name in SAVED_MODEL_FILES)


def read_meta_graph(export_dir: pathlib.Path) -> meta_graph_pb2.MetaGraphDef:
    """The `serve`-tagged MetaGraphDef of a SavedModel on disk."""
    saved = saved_model_pb2.SavedModel()
    pb = export_dir / "saved_model.pb"
    if pb.is_file():
        saved.ParseFromString(pb.read_bytes())
    else:
        text_format.Parse((export_dir / "saved_model.pbtxt").read_text(), saved)
    for meta_graph in saved.meta_graphs:
        if SERVING_TAG in meta_graph.meta_info_def.tags:
            return meta_graph
    raise invalid(f"SavedModel {export_dir} has no MetaGraphDef tagged {SERVING_TAG!r}")


@dataclasses.dataclass(frozen=True, eq=False)
class Signature:
    """A callable signature: input keys in call order, dtypes, output keys, and a runner.

    `runner` takes the inputs as a list in `input_keys` order and returns output key ->
    numpy array.
    """

    name: str
    method_name: str
    input_keys: tuple[str, ...]
    input_dtypes: dict[str, tf.DType]
    output_keys: tuple[str, ...]
    runner: Callable[[list[npt.NDArray[Any]]], dict[str, npt.NDArray[Any]]]

    def call(self, inputs: Mapping[str, npt.ArrayLike]) -> dict[str, npt.NDArray[Any]]:
        """Run on `inputs` (key -> numpy array or Python values); key -> numpy array out."""
        sent, expected = set(inputs), set(self.input_keys)
        if sent != expected:
            raise invalid(
                f"input size does not match signature: {len(sent)}!={len(expected)} "
                f"len({{{','.join(sorted(sent))}}}) != len({{{','.join(sorted(expected))}}}). "
                f"Sent extra: {{{','.join(sorted(sent - expected))}}}. "
                f"Missing but required: {{{','.join(sorted(expected - sent))}}}."
            )
        flat = [self._check(i, key, inputs[key]) for i, key in enumerate(self.input_keys)]
        try:
            return self.runner(flat)
        except tf.errors.OpError as e:
            raise step_error(e) from e

    def _check(self, i: int, key: str, value: npt.ArrayLike) -> npt.NDArray[Any]:
        """`value` as a numpy array of the signature's dtype; INVALID_ARGUMENT otherwise."""
        want = self.input_dtypes[key]
        is_string = want.name == "string"
        if not isinstance(value, np.ndarray):
            try:
                value = np.asarray(value, dtype=object if is_string else want.as_numpy_dtype)
            except (TypeError, ValueError) as e:
                raise invalid(f"input '{key}' cannot be read as {want.name}: {e}") from e
        got = value.dtype
        ok = (got.kind in "OSU") if is_string else (got == want.as_numpy_dtype)
        if not ok:
            shown = "string" if got.kind in "OSU" else _dtype_name(got)
            raise invalid(f"Expects arg[{i}] ({key}) to be {want.name} but {shown} is provided")
        return value


def step_error(e: tf.errors.OpError) -> ServingError:
    """A failed Session step as a `ServingError` with TensorFlow's code and message."""
    return ServingError(Code(e.error_code), e.message)


def _dtype_name(dtype: np.dtype[Any]) -> str:
    try:
        return str(tf.as_dtype(dtype).name)
    except TypeError:
        return str(dtype)


@dataclasses.dataclass(frozen=True)
class SessionThreads:
    """Threads of a version's TF Session (TF Serving's `--tensorflow_*_parallelism`); 0 lets
    TensorFlow pick (one per core). TensorFlow keeps one intra-op pool per process, sized by
    the first Session: every version of a server shares these settings."""

    intra_op: int = 0
    inter_op: int = 0

    def config(self) -> config_pb2.ConfigProto:
        return config_pb2.ConfigProto(
            intra_op_parallelism_threads=self.intra_op,
            inter_op_parallelism_threads=self.inter_op,
        )


def _session_signatures(
    export_dir: pathlib.Path, threads: SessionThreads
) -> tuple[tf.compat.v1.Session, dict[str, Signature]]:
    """Signatures of a SavedModel (TF1 or TF2): a Session with one callable per signature.

    This is how TF Serving runs them (feeds and fetches by tensor name), so reference
    variables and graph-only ops work, and feed shapes are left to the graph. A call costs
    one C++ step: about half the time of calling a TF2 signature's concrete function
    eagerly on this project's `recommend` (docs/model_server.md).
    """
    graph = tf.Graph()
    session = tf.compat.v1.Session(graph=graph, config=threads.config())
    with graph.as_default(), deprecation.silence():  # the TF1 loader is TF Serving's path
        meta = tf.compat.v1.saved_model.loader.load(session, [SERVING_TAG], str(export_dir))
    out: dict[str, Signature] = {}
    for key, sig in meta.signature_def.items():
        if key.startswith("__"):  # internal entries (TF2's __saved_model_init_op)
            continue
        if any(not t.name for t in list(sig.inputs.values()) + list(sig.outputs.values())):
            continue  # sparse or composite tensors: not servable over TF Serving's APIs
        keys = tuple(sorted(sig.inputs))
        output_keys = tuple(sorted(sig.outputs))
        options = config_pb2.CallableOptions(
            feed=[sig.inputs[k].name for k in keys],
            fetch=[sig.outputs[k].name for k in output_keys],
        )
        # A session callable runs the step directly: no Python-side feed shape checks.
        run_session = session._make_callable_from_options(options)

        def run(
            flat: list[npt.NDArray[Any]],
            run_session: Callable[..., Sequence[Any]] = run_session,
            output_keys: tuple[str, ...] = output_keys,
        ) -> dict[str, npt.NDArray[Any]]:
            return dict(zip(output_keys, (np.asarray(v) for v in run_session(*flat)), strict=True))

        dtypes = {k: tf.as_dtype(sig.inputs[k].dtype) for k in keys}
        out[key] = Signature(key, sig.method_name or PREDICT_METHOD, keys, dtypes, output_keys, run)
    return session, out


class Servable:
    """A loaded SavedModel version. Thread-safe; holders are counted so unload can drain."""

    def __init__(
        self,
        name: str,
        version: int,
        export_dir: pathlib.Path,
        threads: SessionThreads | None = None,
    ) -> None:
        self.name = name
        self.version = version
        self.export_dir = export_dir
        self.meta_graph = read_meta_graph(export_dir)
        session, self.signatures = _session_signatures(export_dir, threads or SessionThreads())
        self._session: tf.compat.v1.Session | None = session
        self._steps: dict[tuple[tuple[str, ...], tuple[str, ...]], Callable[..., Any]] = {}
        self._holders = 0
        self._retired = False
        self._lock = threading.Condition()

    def signature(self, name: str) -> Signature:
        """The signature `name` ('' means `serving_default`), or FAILED_PRECONDITION."""
        key = name or DEFAULT_SIGNATURE
        try:
            return self.signatures[key]
        except KeyError:
            raise ServingError(
                Code.FAILED_PRECONDITION, f'Serving signature key "{key}" not found.'
            ) from None

    def run_tensors(
        self, feeds: Mapping[str, npt.NDArray[Any]], fetches: Sequence[str]
    ) -> dict[str, npt.NDArray[Any]]:
        """One Session step by tensor names: `feeds` (tensor name -> value) in, `fetches` out.

        What TF Serving's Session::Run does for MultiInference: several signatures' tensors in
        one step, each computed once. The callable of a feed/fetch set is kept (up to
        `MAX_STEP_CALLABLES` sets) so a repeated request costs one C++ step.
        """
        key = (tuple(feeds), tuple(fetches))
        step = self._steps.get(key)
        if step is None:
            options = config_pb2.CallableOptions(feed=list(key[0]), fetch=list(key[1]))
            step = self._live_session()._make_callable_from_options(options)
            with self._lock:
                if len(self._steps) < MAX_STEP_CALLABLES:
                    self._steps[key] = step
        try:
            values = step(*feeds.values())
        except tf.errors.OpError as e:
            raise step_error(e) from e
        return {name: np.asarray(value) for name, value in zip(key[1], values, strict=True)}

    def _live_session(self) -> tf.compat.v1.Session:
        if self._session is None:  # retired: no holder is left to call this
            raise lookup_missing(self.name, self.version)
        return self._session

    def signature_def_map(self) -> get_model_metadata_pb2.SignatureDefMap:
        """`SignatureDefMap` proto of this version (what GetModelMetadata returns)."""
        out = get_model_metadata_pb2.SignatureDefMap()
        for key, sig in self.meta_graph.signature_def.items():
            if key.startswith("__"):  # internal entries (e.g. __saved_model_init_op)
                continue
            out.signature_def[key].CopyFrom(sig)
        return out

    # Reference counting: requests hold a servable while they use it.
    def acquire(self) -> bool:
        with self._lock:
            if self._retired:
                return False
            self._holders += 1
            return True

    def release(self) -> None:
        with self._lock:
            self._holders -= 1
            if self._holders == 0:
                self._lock.notify_all()

    def retire(self, timeout: float | None = None) -> bool:
        """Refuse new holders and wait until the current ones are done (True when drained)."""
        with self._lock:
            self._retired = True
            drained = self._lock.wait_for(lambda: self._holders == 0, timeout=timeout)
            if drained and self._session is not None:
                self._session.close()
                self._session = None
                self.signatures = {}
                self._steps = {}
            return drained


def lookup_missing(name: str, version: int | None) -> Exception:
    """TF Serving's NOT_FOUND for a servable that is not loaded."""
    which = f"Latest({name})" if version is None else f"Specific({name}, {version})"
    return not_found(f"Servable not found for request: {which}")
