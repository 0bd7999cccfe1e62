"""Fixture: a loopback HTTP server that answers the KFP v2beta1 REST calls the project makes.

It records every request (method, path, query, content type, body) and answers with the
JSON shapes of the v2beta1 API, holding just enough state (pipelines, versions,
experiments, recurring runs) for the client's look-ups to work.
"""

from __future__ import annotations

import dataclasses
import http.server
import json
import threading
import urllib.parse

import pytest

API = "/apis/v2beta1"


@dataclasses.dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    content_type: str
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


@dataclasses.dataclass
class KfpState:
    pipelines: dict[str, str] = dataclasses.field(default_factory=dict)  # id -> name
    versions: dict[str, list[str]] = dataclasses.field(default_factory=dict)  # pipeline -> ids
    experiments: dict[str, str] = dataclasses.field(default_factory=dict)  # id -> name
    recurring_runs: dict[str, str] = dataclasses.field(default_factory=dict)  # id -> name
    counter: int = 0

    def new_id(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}-{self.counter}"


def _name_filter(query: dict[str, list[str]]) -> str | None:
    if "filter" not in query:
        return None
    (predicate,) = json.loads(query["filter"][0])["predicates"]
    assert predicate["key"] == "display_name" and predicate["operation"] in (1, "EQUALS")
    return predicate["stringValue"]


def _listing(query: dict[str, list[str]], names: dict[str, str], id_key: str, list_key: str):
    """A list call's answer: the objects of ``names`` (id -> display name), only the one the
    query's display_name filter names if it has one; ``{}`` when none (as KFP answers)."""
    name = _name_filter(query)
    found = [{id_key: i, "display_name": n} for i, n in names.items() if name in (None, n)]
    return 200, ({list_key: found, "total_size": len(found)} if found else {})


class KfpApiServer:
    """Start with ``with KfpApiServer() as server:``; ``server.url`` is the KFP host."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.state = KfpState()
        self._lock = threading.Lock()
        handler = self._handler_class()
        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> KfpApiServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def calls(self, skip_reads: bool = False) -> list[tuple[str, str]]:
        return [(r.method, r.path) for r in self.requests if not (skip_reads and r.method == "GET")]

    def last(self, method: str, path: str) -> Recorded:
        matches = [r for r in self.requests if r.method == method and r.path == path]
        assert matches, f"no {method} {path} among {self.calls()}"
        return matches[-1]

    # -- the API ---------------------------------------------------------------------
    def answer(self, req: Recorded) -> tuple[int, dict]:
        s, m, p, q = self.state, req.method, req.path, req.query
        if (m, p) == ("GET", f"{API}/healthz"):
            return 200, {"multi_user": False}
        if (m, p) == ("GET", f"{API}/pipelines"):
            return _listing(q, s.pipelines, "pipeline_id", "pipelines")
        if (m, p) == ("POST", f"{API}/pipelines/upload"):
            pipeline_id, version_id = s.new_id("pipeline"), s.new_id("version")
            s.pipelines[pipeline_id] = q["name"][0]
            s.versions[pipeline_id] = [version_id]
            return 200, {"pipeline_id": pipeline_id, "display_name": q["name"][0]}
        if (m, p) == ("POST", f"{API}/pipelines/upload_version"):
            pipeline_id = q["pipelineid"][0]
            if pipeline_id not in s.versions:
                return 404, {"error": f"pipeline {pipeline_id} not found", "code": 5}
            version_id = s.new_id("version")
            s.versions[pipeline_id].append(version_id)
            return 200, {
                "pipeline_id": pipeline_id,
                "pipeline_version_id": version_id,
                "display_name": q["name"][0],
            }
        if m == "GET" and p.startswith(f"{API}/pipelines/") and p.endswith("/versions"):
            pipeline_id = p.split("/")[-2]
            ids = list(reversed(s.versions.get(pipeline_id, [])))  # newest first
            ids = ids[: int(q.get("page_size", ["10"])[0])]
            versions = [{"pipeline_id": pipeline_id, "pipeline_version_id": v} for v in ids]
            return 200, {"pipeline_versions": versions, "total_size": len(versions)}
        if (m, p) == ("GET", f"{API}/experiments"):
            return _listing(q, s.experiments, "experiment_id", "experiments")
        if (m, p) == ("POST", f"{API}/experiments"):
            experiment_id = s.new_id("experiment")
            s.experiments[experiment_id] = req.json()["display_name"]
            return 200, {**req.json(), "experiment_id": experiment_id}
        if (m, p) == ("POST", f"{API}/runs"):
            return 200, {**req.json(), "run_id": s.new_id("run"), "state": "PENDING"}
        if (m, p) == ("GET", f"{API}/recurringruns"):
            return _listing(q, s.recurring_runs, "recurring_run_id", "recurringRuns")
        if (m, p) == ("POST", f"{API}/recurringruns"):
            recurring_id = s.new_id("recurring")
            s.recurring_runs[recurring_id] = req.json()["display_name"]
            return 200, {**req.json(), "recurring_run_id": recurring_id, "status": "ENABLED"}
        if m == "DELETE" and p.startswith(f"{API}/recurringruns/"):
            s.recurring_runs.pop(p.rsplit("/", 1)[-1], None)
            return 200, {}
        return 404, {"error": f"unexpected {m} {p}", "code": 5}

    def _handler_class(self):
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _serve(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                req = Recorded(
                    method=self.command,
                    path=url.path,
                    query=urllib.parse.parse_qs(url.query),
                    content_type=self.headers.get("Content-Type", ""),
                    body=self.rfile.read(length) if length else b"",
                )
                with server._lock:
                    server.requests.append(req)
                    status, payload = server.answer(req)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _serve

            def log_message(self, *args) -> None:
                pass

        return Handler


@pytest.fixture()
def kfp_server():
    """A running `KfpApiServer` on a free loopback port, stopped after the test."""
    with KfpApiServer() as server:
        yield server
