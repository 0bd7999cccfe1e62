"""A tiny named upstream for the Envoy tests: REST on one port, gRPC (any method) on another.

Every answer names the backend, so a test sees which replica Envoy picked. With
``--fail`` the backend stays healthy (``/healthz`` and ``GET /v1/models/...`` answer 200)
but fails every request (REST 503, gRPC UNAVAILABLE): what retries must route around.
With ``--healthy-when FILE`` its health answers are 503 until FILE exists: replicas that
start unhealthy and turn healthy together, as a stack's gateways do once a model loads.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc


def _rest_handler(name: str, fail: bool, healthy_when: str | None):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self, status: int, payload: dict) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802
            if self.path == "/healthz" or self.path.startswith("/v1/models/"):
                healthy = healthy_when is None or os.path.exists(healthy_when)
                status = 200 if healthy else 503
                self._answer(status, {"backend": name, "path": self.path, "method": "GET"})
            else:
                self._answer(404, {"error": "not found"})

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("content-length", "0"))
            self.rfile.read(length)
            status = 503 if fail else 200
            self._answer(status, {"backend": name, "path": self.path, "method": "POST"})

        def log_message(self, *args) -> None:
            pass

    return Handler


class _AnyMethod(grpc.GenericRpcHandler):
    def __init__(self, name: str, fail: bool) -> None:
        self.name, self.fail = name, fail

    def service(self, details):
        method = details.method

        def unary(request: bytes, context) -> bytes:
            if self.fail:
                context.abort(grpc.StatusCode.UNAVAILABLE, f"{self.name} fails on purpose")
            return f"{self.name}|{method}".encode()

        return grpc.unary_unary_rpc_method_handler(unary)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", required=True)
    parser.add_argument("--rest-port", type=int, required=True)
    parser.add_argument("--grpc-port", type=int, required=True)
    parser.add_argument("--fail", action="store_true")
    parser.add_argument("--healthy-when", help="health answers 503 until this file exists")
    args = parser.parse_args()

    grpc_server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    grpc_server.add_generic_rpc_handlers((_AnyMethod(args.name, args.fail),))
    grpc_server.add_insecure_port(f"127.0.0.1:{args.grpc_port}")
    grpc_server.start()
    http = ThreadingHTTPServer(
        ("127.0.0.1", args.rest_port), _rest_handler(args.name, args.fail, args.healthy_when)
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    threading.Thread(target=http.serve_forever, daemon=True).start()
    stop.wait()
    http.shutdown()
    grpc_server.stop(0)


if __name__ == "__main__":
    main()
