"""Request batching: concurrent calls on one signature are merged along dimension 0.

A `Batcher` owns a bounded queue per signature and `num_batch_threads` workers. A worker
takes the oldest task, waits up to `batch_timeout_micros` for more, merges tasks whose inputs
are compatible (same keys, same inner shapes) up to `max_batch_size` rows, runs the signature
once and hands each caller its rows back. A full queue answers UNAVAILABLE.
"""

from __future__ import annotations

import collections
import concurrent.futures
import functools
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from serving.errors import Code, ServingError
from serving.model_server.config import BatchingOptions

Inputs = Mapping[str, npt.ArrayLike]  # input key -> value (a numpy array, or Python values)
Outputs = dict[str, npt.NDArray[Any]]  # output key -> value


class Callee(Protocol):
    """What a queue runs: a `servable.Signature`, or anything with its `call`."""

    def call(self, inputs: Inputs) -> Outputs: ...


class _Task:
    __slots__ = ("inputs", "rows", "future")

    def __init__(self, inputs: Inputs, rows: int) -> None:
        self.inputs, self.rows = inputs, rows
        self.future: concurrent.futures.Future[Outputs] = concurrent.futures.Future()


def _rows(inputs: Inputs) -> int | None:
    """Common dimension 0 of all inputs, or None when they cannot be batched."""
    sizes = {np.shape(v)[0] if np.ndim(v) else None for v in inputs.values()}
    return sizes.pop() if len(sizes) == 1 and None not in sizes else None


def _compatible(a: Inputs, b: Inputs) -> bool:
    if a.keys() != b.keys():
        return False
    return all(
        np.shape(a[k])[1:] == np.shape(b[k])[1:]
        and np.asarray(a[k]).dtype == np.asarray(b[k]).dtype
        for k in a
    )


class _Queue:
    """The batching queue and workers of one signature."""

    def __init__(
        self,
        run: Callable[[Inputs], Outputs],
        options: BatchingOptions,
        on_batch: Callable[[int], None],
    ) -> None:
        self._run, self._options, self._on_batch = run, options, on_batch
        self._tasks: collections.deque[_Task] = collections.deque()
        self._cv = threading.Condition()
        self._closed = False
        limit = options.max_enqueued_batches * options.max_batch_size
        self._max_tasks = min(limit, 1 << 20)
        self._workers = [
            threading.Thread(target=self._work, daemon=True, name="batch-worker")
            for _ in range(options.num_batch_threads)
        ]
        for w in self._workers:
            w.start()

    def submit(self, inputs: Inputs, rows: int) -> concurrent.futures.Future[Outputs]:
        task = _Task(inputs, rows)
        with self._cv:
            if self._closed:
                raise ServingError(Code.UNAVAILABLE, "the batching queue is shutting down")
            if len(self._tasks) >= self._max_tasks:
                raise ServingError(
                    Code.UNAVAILABLE,
                    "The batch scheduling queue to which this task was submitted is full",
                )
            self._tasks.append(task)
            self._cv.notify()
        return task.future

    def _take(self) -> list[_Task] | None:
        opts = self._options
        with self._cv:
            while not self._tasks and not self._closed:
                self._cv.wait()
            if not self._tasks:
                return None
            first = self._tasks.popleft()
            batch, rows = [first], first.rows
            deadline = time.monotonic() + opts.batch_timeout_micros / 1e6
            while rows < opts.max_batch_size:
                if not self._tasks:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or self._closed:
                        break
                    self._cv.wait(remaining)
                    continue
                nxt = self._tasks[0]
                if rows + nxt.rows > opts.max_batch_size or not _compatible(
                    first.inputs, nxt.inputs
                ):
                    break
                batch.append(self._tasks.popleft())
                rows += nxt.rows
            return batch

    def _work(self) -> None:
        while (batch := self._take()) is not None:
            self._execute(batch)

    def _execute(self, batch: list[_Task]) -> None:
        if len(batch) == 1:
            self._resolve(batch[0], lambda: self._run(batch[0].inputs))
            return
        keys = batch[0].inputs.keys()
        merged = {k: np.concatenate([np.asarray(t.inputs[k]) for t in batch]) for k in keys}
        total = sum(t.rows for t in batch)
        try:
            outputs = self._run(merged)
        except Exception as e:  # every caller of the batch gets the error
            for t in batch:
                t.future.set_exception(e)
            return
        if any(np.ndim(v) == 0 or np.shape(v)[0] != total for v in outputs.values()):
            for t in batch:  # outputs not split-able by rows: run each task alone
                self._resolve(t, functools.partial(self._run, t.inputs))
            return
        self._on_batch(total)
        start = 0
        for t in batch:
            end = start + t.rows
            t.future.set_result({k: v[start:end] for k, v in outputs.items()})
            start = end

    def _resolve(self, task: _Task, fn: Callable[[], Outputs]) -> None:
        try:
            result = fn()
        except Exception as e:
            task.future.set_exception(e)
        else:
            self._on_batch(task.rows)
            task.future.set_result(result)

    def pending(self) -> int:
        with self._cv:
            return len(self._tasks)

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify_all()


def _weak_call(ref: weakref.ref[Callee]) -> Callable[[Inputs], Outputs]:
    def call(inputs: Inputs) -> Outputs:
        callee = ref()
        if callee is None:  # gone with its servable (its callers hold it: not while they wait)
            raise ServingError(Code.UNAVAILABLE, "the batching queue is shutting down")
        return callee.call(inputs)

    return call


class Batcher:
    """Batching queues keyed by signature object; queues go away with their servable."""

    def __init__(
        self, options: BatchingOptions, on_batch: Callable[[int], None] = lambda rows: None
    ) -> None:
        self.options = options
        self._on_batch = on_batch
        self._queues: weakref.WeakKeyDictionary[Callee, _Queue] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def run(self, signature: Callee, inputs: Inputs) -> Outputs:
        """Run `signature` on `inputs`, merged with concurrent calls when possible."""
        rows = _rows(inputs)
        if rows is None or rows > self.options.max_batch_size:
            return signature.call(inputs)
        with self._lock:
            queue = self._queues.get(signature)
            if queue is None:
                # The queue must not keep the signature alive.
                queue = _Queue(_weak_call(weakref.ref(signature)), self.options, self._on_batch)
                self._queues[signature] = queue
                weakref.finalize(signature, queue.close)
        return queue.submit(inputs, rows).result()

    def pending(self, signature: Callee) -> int:
        """Calls waiting in `signature`'s queue (not yet taken by a worker)."""
        with self._lock:
            queue = self._queues.get(signature)
        return 0 if queue is None else queue.pending()

    def close(self) -> None:
        with self._lock:
            for queue in list(self._queues.values()):
                queue.close()
