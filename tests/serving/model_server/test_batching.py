"""The batching queue: merging, splitting back, incompatible inputs, bounded queue.

The queue logic is tested with a plain Python signature (`call` on numpy inputs) so it can be
blocked and observed; the real TF path is covered by the batching server test.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from serving.errors import Code, ServingError
from serving.model_server.batching import Batcher
from serving.model_server.config import BatchingOptions


class HalfPlusTwo:
    """y = 0.5 * x + 2 row by row; records the batch sizes it ran."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.batches: list[int] = []
        self.gate = gate
        self.entered = threading.Event()

    def call(self, inputs):
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(10)
        x = inputs["x"]
        self.batches.append(len(x))
        return {"y": 0.5 * x + 2}


def test_concurrent_calls_are_merged_and_split_back():
    gate = threading.Event()
    signature = HalfPlusTwo(gate)
    batcher = Batcher(
        BatchingOptions(max_batch_size=64, batch_timeout_micros=0, num_batch_threads=1)
    )
    with ThreadPoolExecutor(9) as pool:
        first = pool.submit(batcher.run, signature, {"x": np.array([[0.0]], np.float32)})
        signature.entered.wait(5)  # the worker is busy with the first call...
        futures = [
            pool.submit(batcher.run, signature, {"x": np.array([[i], [10 + i]], np.float32)})
            for i in range(1, 9)
        ]
        while batcher.pending(signature) < 8:  # ...while 8 more queue up
            threading.Event().wait(0.01)
        gate.set()
        results = [f.result(10)["y"] for f in futures]
    assert first.result()["y"].tolist() == [[2.0]]
    for i, y in enumerate(results, start=1):
        assert y.tolist() == [[0.5 * i + 2], [0.5 * (10 + i) + 2]]
    assert signature.batches == [1, 16]  # the 8 queued calls ran as one batch of 16 rows
    batcher.close()


def test_incompatible_inputs_run_separately():
    gate = threading.Event()
    signature = HalfPlusTwo(gate)
    batcher = Batcher(BatchingOptions(max_batch_size=64, num_batch_threads=1))
    with ThreadPoolExecutor(3) as pool:
        pool.submit(batcher.run, signature, {"x": np.zeros((1, 1), np.float32)})
        signature.entered.wait(5)
        a = pool.submit(batcher.run, signature, {"x": np.ones((1, 1), np.float32)})
        b = pool.submit(batcher.run, signature, {"x": np.ones((1, 3), np.float32)})
        while batcher.pending(signature) < 2:
            threading.Event().wait(0.01)
        gate.set()
        assert a.result(10)["y"].shape == (1, 1) and b.result(10)["y"].shape == (1, 3)
    assert signature.batches == [1, 1, 1]
    batcher.close()


def test_full_queue_is_unavailable():
    gate = threading.Event()
    signature = HalfPlusTwo(gate)
    options = BatchingOptions(max_batch_size=1, max_enqueued_batches=1, num_batch_threads=1)
    batcher = Batcher(options)
    x = {"x": np.zeros((1, 1), np.float32)}
    with ThreadPoolExecutor(2) as pool:
        running = pool.submit(batcher.run, signature, x)
        signature.entered.wait(5)
        queued = pool.submit(batcher.run, signature, x)
        while batcher.pending(signature) < 1:
            threading.Event().wait(0.01)
        with pytest.raises(ServingError) as e:
            batcher.run(signature, x)
        assert e.value.code == Code.UNAVAILABLE
        gate.set()
        running.result(10), queued.result(10)
    batcher.close()


def test_errors_reach_every_caller_of_the_batch():
    class Failing:
        def call(self, inputs):
            raise ServingError(Code.INVALID_ARGUMENT, "bad rows")

    batcher = Batcher(BatchingOptions(max_batch_size=8))
    with pytest.raises(ServingError, match="bad rows"):
        batcher.run(Failing(), {"x": np.zeros((2, 1), np.float32)})
    batcher.close()
