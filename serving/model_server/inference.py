"""Predict, Classify, Regress and MultiInference on one servable: the data plane's calls and
the warm-up's.

The caller has chosen the servable (the data plane through the `ModelManager`, the load-time
warm-up on the version it is loading), so a request's model spec only names a signature here.
Failures are `ServingError`s with TF Serving's status codes and messages.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from tensorflow.core.example import example_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    inference_pb2,
    input_pb2,
    model_pb2,
    predict_pb2,
    regression_pb2,
)

from serving.errors import Code, ServingError, invalid
from serving.model_server import tensors
from serving.model_server.batching import Batcher, Inputs, Outputs
from serving.model_server.example_signatures import (
    ExampleTask,
    check_examples_input,
    classification_result,
    example_task,
    regression_result,
    signature_key,
    signature_not_found,
)
from serving.model_server.servable import (
    CLASSIFY_METHOD,
    PREDICT_METHOD,
    REGRESS_METHOD,
    Servable,
    Signature,
)

MAX_EXAMPLES = 100_000


def _response_spec(out: model_pb2.ModelSpec, name: str, version: int, signature: str) -> None:
    out.name = name
    out.version.value = version
    out.signature_name = signature


def run_predict(
    servable: Servable,
    signature_name: str,
    inputs: Inputs | Callable[[Signature], Inputs],
    output_filter: Iterable[str] = (),
    batcher: Batcher | None = None,
    method_name_check: bool = False,
) -> tuple[str, Outputs]:
    """(signature name, outputs) of a Predict on `servable`.

    `inputs` is key -> numpy array, or a function of the `Signature` returning that (REST
    decodes JSON only once it knows the signature's input names and dtypes).
    """
    signature = servable.signature(signature_name)
    if method_name_check:
        _check_predict_method(servable, signature.name)
    values = inputs(signature) if callable(inputs) else inputs
    wanted = list(output_filter)
    for key in wanted:
        if key not in signature.output_keys:
            raise invalid(
                f"output tensor alias not found in signature: {key} Outputs expected "
                f"to be in the set {{{','.join(signature.output_keys)}}}."
            )
    outputs = batcher.run(signature, values) if batcher is not None else signature.call(values)
    if wanted:
        outputs = {k: outputs[k] for k in dict.fromkeys(wanted)}
    return signature.name, outputs


def _check_predict_method(servable: Servable, signature_name: str) -> None:
    """With `--enable_signature_method_name_check`, Predict runs predict, classify and regress
    signatures only (INTERNAL otherwise, as in TF Serving's predict_util.cc)."""
    method = servable.meta_graph.signature_def[signature_name].method_name
    if method not in (PREDICT_METHOD, CLASSIFY_METHOD, REGRESS_METHOD):
        raise ServingError(
            Code.INTERNAL,
            "Expected prediction signature method_name to be one of "
            f"{{{PREDICT_METHOD}, {CLASSIFY_METHOD}, {REGRESS_METHOD}}}. Was: {method}",
        )


def predict_on(
    servable: Servable,
    request: predict_pb2.PredictRequest,
    batcher: Batcher | None = None,
    method_name_check: bool = False,
) -> predict_pb2.PredictResponse:
    """A `PredictResponse` for `request` run on `servable` (its model spec only names a
    signature here: the caller chose the servable)."""
    inputs = {key: tensors.from_proto(t, key) for key, t in request.inputs.items()}
    name, outputs = run_predict(
        servable,
        request.model_spec.signature_name,
        inputs,
        request.output_filter,
        batcher,
        method_name_check,
    )
    response = predict_pb2.PredictResponse()
    _response_spec(response.model_spec, servable.name, servable.version, name)
    for key, value in outputs.items():
        response.outputs[key].CopyFrom(tensors.to_proto(value))
    return response


def _examples_task(
    servable: Servable, method: str, signature_name: str, method_name_check: bool
) -> ExampleTask:
    """The servable's signature `signature_name` checked for Classify or Regress."""
    name = signature_key(signature_name)
    signature_defs = servable.meta_graph.signature_def
    if name not in signature_defs:
        raise signature_not_found(name)
    return example_task(method, name, signature_defs[name], method_name_check)


def _run_tasks(
    servable: Servable, input_proto: input_pb2.Input, tasks: Sequence[ExampleTask]
) -> tuple[int, list[dict[str, npt.NDArray[Any]]]]:
    """(examples, each task's outputs by key): every task's signature over the same examples
    in one Session step (an input or output two tasks share is fed or computed once)."""
    examples = np.array(serialize_examples(input_proto), dtype=object)
    for task in tasks:
        check_examples_input(task)
    feeds = {task.input_tensor: examples for task in tasks}
    fetches = sorted({tensor for task in tasks for tensor in task.outputs.values()})
    fetched = servable.run_tensors(feeds, fetches)
    per_task = [{key: fetched[tensor] for key, tensor in task.outputs.items()} for task in tasks]
    return len(examples), per_task


def classify_on(
    servable: Servable,
    request: classification_pb2.ClassificationRequest,
    method_name_check: bool = False,
) -> classification_pb2.ClassificationResponse:
    """A `ClassificationResponse` for `request` run on `servable` (the signature rules are
    TF Serving's: `example_signatures`)."""
    response = classification_pb2.ClassificationResponse()
    _one_task_on(
        servable, request, CLASSIFY_METHOD, method_name_check, response, classification_result
    )
    return response


def regress_on(
    servable: Servable,
    request: regression_pb2.RegressionRequest,
    method_name_check: bool = False,
) -> regression_pb2.RegressionResponse:
    """A `RegressionResponse` for `request` run on `servable`."""
    response = regression_pb2.RegressionResponse()
    _one_task_on(servable, request, REGRESS_METHOD, method_name_check, response, regression_result)
    return response


def _one_task_on(
    servable: Servable,
    request: classification_pb2.ClassificationRequest | regression_pb2.RegressionRequest,
    method: str,
    method_name_check: bool,
    response: classification_pb2.ClassificationResponse | regression_pb2.RegressionResponse,
    fill_result: Callable[[int, dict[str, npt.NDArray[Any]], Any], None],
) -> None:
    """Run the one task of a Classify or Regress `request` (``method``) on `servable` and
    fill `response` (its model spec, and its result with ``fill_result``)."""
    task = _examples_task(servable, method, request.model_spec.signature_name, method_name_check)
    n, [outputs] = _run_tasks(servable, request.input, [task])
    _response_spec(response.model_spec, servable.name, servable.version, task.signature_name)
    fill_result(n, outputs, response.result)


def multi_inference_on(
    servable: Servable,
    request: inference_pb2.MultiInferenceRequest,
    method_name_check: bool = False,
) -> inference_pb2.MultiInferenceResponse:
    """A `MultiInferenceResponse`: every task (a Classify or a Regress) over the request's one
    input, in one Session step on `servable` (the version the first task's model spec chose).

    TF Serving's rules (`servables/tensorflow/multi_inference.cc`): every task names the same
    model, no signature twice, each signature exists and qualifies for its task's method
    (`example_signatures`), and the method is classify or regress (else UNIMPLEMENTED).
    """
    signature_defs = servable.meta_graph.signature_def
    model = ""
    seen: set[str] = set()
    tasks: list[ExampleTask] = []
    for task in request.tasks:
        spec = task.model_spec
        if not spec.name:
            raise invalid("Found ModelSpec with an empty model name.")
        if model and spec.name != model:
            raise invalid(
                "All ModelSpecs in a MultiInferenceRequest must access the same model name."
            )
        model = spec.name
        name = signature_key(spec.signature_name)
        if name in seen:
            raise invalid(f"Duplicate evaluation of signature: {name}")
        seen.add(name)
        if name not in signature_defs:
            raise invalid(f"Requested signature not found in model graph: {name}")
        if task.method_name not in (CLASSIFY_METHOD, REGRESS_METHOD):
            raise ServingError(
                Code.UNIMPLEMENTED, f"Unsupported signature method_name: {task.method_name}"
            )
        tasks.append(example_task(task.method_name, name, signature_defs[name], method_name_check))
    n, outputs = _run_tasks(servable, request.input, tasks)
    response = inference_pb2.MultiInferenceResponse()
    for task, task_outputs in zip(tasks, outputs, strict=True):
        result = response.results.add()
        _response_spec(result.model_spec, model, servable.version, task.signature_name)
        if task.method == CLASSIFY_METHOD:
            classification_result(n, task_outputs, result.classification_result)
        else:
            regression_result(n, task_outputs, result.regression_result)
    return response


def serialize_examples(input_proto: input_pb2.Input) -> list[bytes]:
    """Serialized tf.Examples of an `Input` (context features merged into each example)."""
    kind = input_proto.WhichOneof("kind")
    if kind == "example_list":
        examples = list(input_proto.example_list.examples)
        context = None
    elif kind == "example_list_with_context":
        examples = list(input_proto.example_list_with_context.examples)
        context = input_proto.example_list_with_context.context
    else:
        raise invalid("Input is empty")
    if not examples:
        raise invalid("Input is empty")
    if len(examples) > MAX_EXAMPLES:
        raise invalid(f"{len(examples)} examples; the limit is {MAX_EXAMPLES}")
    out: list[bytes] = []
    for ex in examples:
        if context is not None:
            merged = example_pb2.Example()
            merged.CopyFrom(context)
            merged.MergeFrom(ex)
            ex = merged
        out.append(ex.SerializeToString())
    return out
