"""Model server benchmark: Predict latency over gRPC and REST against the in-process floor,
and throughput with and without batching at several concurrencies.

Every figure comes from this one run, on TF Serving's half_plus_two (TF1) model:

- floor: the same signature called in-process (TF Session callable, no server);
- latency: sequential Predict calls (one row) over gRPC and REST: p50/p95 and p50 / floor;
- throughput: closed-loop clients (threads, one gRPC channel each) for `--duration` seconds
  at each concurrency, against a server without and one with `--enable_batching`; requests/s
  and the batching/no-batching ratio, p50/p95 latency, errors.

    .venv/bin/python benchmarks/model_server.py [--requests 500] [--duration 5] \
        [--concurrency 1,8,32] [--rows 1]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import sys
import tempfile
import threading
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.harness.load import timed_calls  # noqa: E402
from serving.process import start_model_server  # noqa: E402

MODEL_DIR = REPO.parent / "shared" / "testdata" / "tf_serving" / "saved_model_half_plus_two_cpu"
MODEL = "half_plus_two"


def _stats(samples: list[float]) -> tuple[float, float]:
    ms = np.array(samples) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 95))


def _floor(requests: int, rows: int) -> list[float]:
    from serving.model_server.servable import Servable

    servable = Servable(MODEL, 123, MODEL_DIR / "00000123")
    signature = servable.signature("")
    x = {"x": np.full((rows, 1), 2.0, np.float32)}
    return timed_calls(lambda: signature.call(x), 50, requests)


def _grpc_request(rows: int):
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.full((rows, 1), 2.0, np.float32)))
    return request


def _grpc_latency(target: str, requests: int, rows: int) -> list[float]:
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    request = _grpc_request(rows)
    with grpc.insecure_channel(target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        return timed_calls(lambda: stub.Predict(request, timeout=10), 50, requests)


def _rest_latency(url: str, requests: int, rows: int) -> list[float]:
    import http.client

    host, port = url.removeprefix("http://").split(":")
    body = json.dumps({"instances": [[2.0]] * rows})
    conn = http.client.HTTPConnection(host, int(port), timeout=10)  # keep-alive, like curl -K

    def predict() -> None:
        conn.request(
            "POST", f"/v1/models/{MODEL}:predict", body, {"Content-Type": "application/json"}
        )
        resp = conn.getresponse()
        resp.read()
        if resp.status != 200:
            raise RuntimeError(f"REST predict answered {resp.status}")

    try:
        return timed_calls(predict, 50, requests)
    finally:
        conn.close()


def _throughput(target: str, concurrency: int, duration: float, rows: int) -> dict:
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    request = _grpc_request(rows)
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors = [0] * concurrency
    start_barrier = threading.Barrier(concurrency + 1)
    stop = threading.Event()

    def client(i: int) -> None:
        with grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)]) as ch:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(ch)
            stub.Predict(request, timeout=10)
            start_barrier.wait()
            while not stop.is_set():
                t = time.perf_counter()
                try:
                    stub.Predict(request, timeout=10)
                    latencies[i].append(time.perf_counter() - t)
                except grpc.RpcError:
                    errors[i] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(concurrency)]
    for t in threads:
        t.start()
    start_barrier.wait()
    began = time.perf_counter()
    time.sleep(duration)
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    samples = [x for per in latencies for x in per]
    p50, p95 = _stats(samples)
    return {"rps": len(samples) / elapsed, "p50": p50, "p95": p95, "errors": sum(errors)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--requests", type=int, default=500, help="sequential requests per latency run"
    )
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per throughput step")
    parser.add_argument("--concurrency", default="1,8,32", help="comma-separated client counts")
    parser.add_argument("--rows", type=int, default=1, help="rows per request")
    args = parser.parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",")]
    if args.requests < 10 or args.duration <= 0 or args.rows < 1 or min(levels) < 1:
        parser.error("--requests >= 10, --duration > 0, --rows >= 1, concurrency >= 1")

    work = pathlib.Path(tempfile.mkdtemp(prefix="ms-bench-"))
    try:
        print(f"[1/4] in-process floor ({args.requests} calls)", flush=True)
        floor_p50, floor_p95 = _stats(_floor(args.requests, args.rows))
        batching = work / "batching.txt"
        batching.write_text(
            "max_batch_size { value: 64 }\nbatch_timeout_micros { value: 500 }\n"
            "max_enqueued_batches { value: 100 }\nnum_batch_threads { value: 2 }\n"
        )
        base_args = [f"--model_name={MODEL}", f"--model_base_path={MODEL_DIR}"]
        results: dict[str, dict] = {}
        print("[2/4] starting model servers (plain and batching)", flush=True)
        plain = start_model_server(base_args, work / "plain.log")
        batched = start_model_server(
            [*base_args, "--enable_batching", f"--batching_parameters_file={batching}"],
            work / "batched.log",
        )
        try:
            plain.wait_ready(MODEL)
            batched.wait_ready(MODEL)
            print(
                f"[3/4] latency over gRPC and REST ({args.requests} sequential calls each)",
                flush=True,
            )
            grpc_p50, grpc_p95 = _stats(_grpc_latency(plain.grpc_target, args.requests, args.rows))
            rest_p50, rest_p95 = _stats(_rest_latency(plain.rest_url, args.requests, args.rows))
            print(
                f"[4/4] throughput, {args.duration:.0f}s per step, concurrency {levels}", flush=True
            )
            for c in levels:
                for name, server in (("plain", plain), ("batching", batched)):
                    results[f"{name}@{c}"] = _throughput(
                        server.grpc_target, c, args.duration, args.rows
                    )
                    r = results[f"{name}@{c}"]
                    print(f"      {name:>8} c={c:<3} {r['rps']:8.0f} req/s", flush=True)
        finally:
            plain.stop()
            batched.stop()

        print(f"\nPredict latency (ms, one request at a time, rows={args.rows})")
        print(f"  {'path':<28}{'p50':>8}{'p95':>8}{'p50/floor':>11}")
        for label, p50, p95 in (
            ("in-process floor", floor_p50, floor_p95),
            ("gRPC (tensorflow_serving)", grpc_p50, grpc_p95),
            ("REST (:predict JSON)", rest_p50, rest_p95),
        ):
            print(f"  {label:<28}{p50:8.3f}{p95:8.3f}{p50 / floor_p50:10.1f}x")
        print("\nThroughput over gRPC (closed loop, requests/s)")
        print(
            f"  {'clients':<9}{'plain':>9}{'p95 ms':>8}{'batching':>10}{'p95 ms':>8}{'ratio':>8}{'errors':>8}"
        )
        for c in levels:
            p, b = results[f"plain@{c}"], results[f"batching@{c}"]
            print(
                f"  {c:<9}{p['rps']:9.0f}{p['p95']:8.2f}{b['rps']:10.0f}{b['p95']:8.2f}"
                f"{b['rps'] / p['rps']:7.2f}x{p['errors'] + b['errors']:8d}"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
