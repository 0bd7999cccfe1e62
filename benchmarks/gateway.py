"""Gateway benchmark: what the caching gateway costs and saves, against a direct model call.

Starts a redis-server, the real `aiqleads-model-server` and one `python -m serving.gateway`
on free loopback ports, serving the fixture recommender (`tests/fixtures/recommend_model.py`),
then measures with `--concurrency` clients in a closed loop, all in the same run:

- baseline: Predict on the `recommend` signature straight to the model server (gRPC);
- miss: REST recommendations for users never seen before (gateway + Redis + model call);
- hit: REST recommendations of a warmed set of users (gateway + Redis only);
- grpc hit: the same over the gateway's gRPC API.

It prints p50/p95/p99 per case, throughput, and the ratio of each p50 to the baseline p50.

    .venv/bin/python benchmarks/gateway.py [--requests 2000] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def wait_http(url: str, process: subprocess.Popen, timeout: float = 300) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{process.args[0]} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.25)
    raise SystemExit(f"{url} did not become healthy in {timeout:.0f} s")


async def closed_loop(call, requests: int, concurrency: int) -> tuple[np.ndarray, float]:
    """Latencies (ms) of `requests` calls `call(i)` made by `concurrency` workers."""
    latencies = np.zeros(requests)
    counter = iter(range(requests))

    async def worker() -> None:
        for i in counter:
            start = time.perf_counter()
            await call(i)
            latencies[i] = (time.perf_counter() - start) * 1000

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, requests / (time.perf_counter() - start)


async def measure(ports: dict, requests: int, concurrency: int) -> list[tuple]:
    import aiohttp
    import grpc
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    from serving.protos.generated import recommendations_pb2 as pb
    from serving.protos.generated import recommendations_pb2_grpc as pb_grpc

    def vector(dtype, field, values):
        dim = tensor_shape_pb2.TensorShapeProto.Dim(size=len(values))
        proto = tensor_pb2.TensorProto(
            dtype=dtype, tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=[dim])
        )
        getattr(proto, field).extend(values)
        return proto

    model_channel = grpc.aio.insecure_channel(f"127.0.0.1:{ports['ms_grpc']}")
    predict = prediction_service_pb2_grpc.PredictionServiceStub(model_channel).Predict

    async def baseline(i: int) -> None:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "lead_recommender"
        request.model_spec.signature_name = "recommend"
        request.inputs["user_id"].CopyFrom(vector(types_pb2.DT_STRING, "string_val", [b"u%d" % i]))
        for name in ("latitude", "longitude"):
            request.inputs[name].CopyFrom(vector(types_pb2.DT_FLOAT, "float_val", [math.nan]))
        request.inputs["k"].CopyFrom(vector(types_pb2.DT_INT32, "int_val", [10]))
        await predict(request, timeout=5)

    url = f"http://127.0.0.1:{ports['gw_rest']}/v1/recommendations"
    connector = aiohttp.TCPConnector(limit=concurrency)
    session = aiohttp.ClientSession(connector=connector)
    warm_users = 100

    async def rest(user: str, want_cached: bool | None) -> None:
        async with session.post(url, json={"user_id": user, "k": 10}) as response:
            body = await response.json()
            if response.status != 200 or (
                want_cached is not None and body["cached"] != want_cached
            ):
                raise SystemExit(f"unexpected answer {response.status}: {body}")

    gw_channel = grpc.aio.insecure_channel(f"127.0.0.1:{ports['gw_grpc']}")
    recommend = pb_grpc.RecommendationsStub(gw_channel).Recommend

    async def grpc_hit(i: int) -> None:
        reply = await recommend(
            pb.RecommendRequest(user_id=f"warm-{i % warm_users}", k=10), timeout=5
        )
        assert reply.cached

    cases = [
        ("baseline: model server Predict", baseline),
        ("gateway REST miss", lambda i: rest(f"cold-{i}", False)),
        ("gateway REST hit", lambda i: rest(f"warm-{i % warm_users}", True)),
        ("gateway gRPC hit", grpc_hit),
    ]
    for i in range(warm_users):  # warm the hit set and every connection
        await rest(f"warm-{i}", None)
    await closed_loop(baseline, 50, concurrency)
    results = []
    for name, call in cases:
        latencies, throughput = await closed_loop(call, requests, concurrency)
        results.append((name, *np.percentile(latencies, [50, 95, 99]), throughput))
        print(f"  measured {name}", flush=True)
    await session.close()
    await model_channel.close()
    await gw_channel.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per case")
    parser.add_argument("--concurrency", type=int, default=8, help="clients in flight")
    args = parser.parse_args()
    if not 1 <= args.concurrency <= 256 or not 10 <= args.requests <= 1_000_000:
        raise SystemExit("use --concurrency 1..256 and --requests 10..1000000")
    sys.path.insert(0, str(REPO))
    from benchmarks.harness import stacks
    from serving.process import free_port

    ports = {name: free_port() for name in ("redis", "ms_grpc", "ms_rest", "gw_rest", "gw_grpc")}
    processes: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory(prefix="gateway-bench-") as tmp:
        tmp_path = pathlib.Path(tmp)
        try:
            print("building the fixture model ...", flush=True)
            base = stacks.fixture_model(tmp_path)
            print("starting redis, model server and gateway ...", flush=True)
            processes.append(subprocess.Popen(
                ["redis-server", "--port", str(ports["redis"]), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no", "--dir", tmp],
                stdout=subprocess.DEVNULL))  # fmt: skip
            processes.append(subprocess.Popen(
                [str(pathlib.Path(sys.executable).with_name("aiqleads-model-server")),
                 f"--port={ports['ms_grpc']}", f"--rest_api_port={ports['ms_rest']}",
                 "--host=127.0.0.1", "--model_name=lead_recommender",
                 f"--model_base_path={base}"],
                stdout=(tmp_path / "ms.log").open("wb"), stderr=subprocess.STDOUT, env=ENV))  # fmt: skip
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "serving.gateway", "--rest-port", str(ports["gw_rest"]),
                 "--grpc-port", str(ports["gw_grpc"]),
                 "--redis-url", f"redis://127.0.0.1:{ports['redis']}/0",
                 "--model-server", f"127.0.0.1:{ports['ms_grpc']}", "--model-timeout-ms", "5000"],
                cwd=REPO, stdout=(tmp_path / "gw.log").open("wb"), stderr=subprocess.STDOUT,
                env=ENV))  # fmt: skip
            wait_http(
                f"http://127.0.0.1:{ports['ms_rest']}/v1/models/lead_recommender", processes[1]
            )
            wait_http(f"http://127.0.0.1:{ports['gw_rest']}/healthz", processes[2])
            print(f"measuring {args.requests} requests per case, concurrency {args.concurrency}")
            results = asyncio.run(measure(ports, args.requests, args.concurrency))
        finally:
            for process in reversed(processes):
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
                    try:
                        process.wait(timeout=20)
                    except subprocess.TimeoutExpired:
                        process.kill()
    base_p50 = results[0][1]
    print(
        f"\n{'case':34s} {'p50 ms':>8s} {'p95 ms':>8s} {'p99 ms':>8s} {'req/s':>8s} {'p50/base':>9s}"
    )
    for name, p50, p95, p99, throughput in results:
        print(
            f"{name:34s} {p50:8.2f} {p95:8.2f} {p99:8.2f} {throughput:8.0f} {p50 / base_p50:9.2f}"
        )


if __name__ == "__main__":
    main()
