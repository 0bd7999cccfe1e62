"""`aiqleads serve` as a user runs it: up, healthy, answers through Envoy, supervised, and
SIGTERM leaves no process behind."""

from __future__ import annotations

import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import grpc
import pytest

from serving.process import free_port, wait_until

REPO = pathlib.Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests" / "fixtures"))
BIN = pathlib.Path(sys.executable).parent

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def model_base(tmp_path_factory) -> pathlib.Path:
    from recommend_model import build_recommend_model

    base = tmp_path_factory.mktemp("models") / "lead_recommender"
    build_recommend_model(base, version=1)
    return base


class _Lines:
    """Collects a stream's lines in a thread so the test can wait for one."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream) -> None:
        for line in stream:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout: float) -> re.Match:
        found: list[re.Match] = []

        def seen() -> bool:
            found[:] = [m for line in self.lines if (m := re.search(pattern, line))]
            return bool(found)

        wait_until(seen, timeout, f"a line matching {pattern!r}", interval=0.2)
        return found[-1]

    def pids(self) -> set[int]:
        return {int(p) for line in self.lines for p in re.findall(r"\(pid (\d+)", line)}


AUTH: dict[str, str] = {}  # the stack's development token, once it is up


def _use_dev_token(run_dir: pathlib.Path) -> None:
    from serving import auth

    AUTH.clear()
    AUTH.update(auth.bearer(auth.read_token(auth.dev_token_path(run_dir))))


def _post(url: str, body: dict) -> dict:
    headers = {"content-type": "application/json", **AUTH}
    request = urllib.request.Request(url, json.dumps(body).encode(), headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as e:  # name who answered: Envoy's own 503s carry no JSON
        pytest.fail(f"{url} {body} -> HTTP {e.code} {dict(e.headers)} {e.read()[:500]!r}")


def _start_serve(tmp_path: pathlib.Path, model_base: pathlib.Path, *args: str) -> subprocess.Popen:
    argv = [str(BIN / "aiqleads"), "serve", "--model-base-path", str(model_base)]
    argv += ["--run-dir", str(tmp_path / "run"), *args]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _print_envoy_logs(log_dir: pathlib.Path, admin: int, launcher_lines: list[str]) -> None:
    """Envoy's view of the gateways right now (admin /clusters: health flags, outlier
    ejection, connection and request counts per host), its logs and the launcher's progress
    lines, shown when a test fails."""
    import time

    from serving.envoy.config import ACCESS_LOG, CLUSTER_GATEWAY_REST, HEALTH_LOG, OUTLIER_LOG

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{admin}/clusters", timeout=5) as resp:
            clusters = resp.read().decode().splitlines()
    except OSError as e:
        clusters = [f"(admin unreachable: {e})"]
    print("--- envoy /clusters (gateway_rest)", *[
        line for line in clusters if line.startswith(CLUSTER_GATEWAY_REST + "::")
        and any(k in line for k in ("health_flags", "cx_active", "rq_total", "rq_error",
                                    "cx_connect_fail", "success_rate"))
    ], sep="\n")  # fmt: skip
    print("--- launcher (last 20 lines)", *launcher_lines[-20:], sep="\n")
    time.sleep(1.5)  # Envoy flushes its file logs every second
    for name, tail in ((ACCESS_LOG, 40), (HEALTH_LOG, 40), (OUTLIER_LOG, 40)):
        path = log_dir / name
        lines = path.read_text().splitlines()[-tail:] if path.exists() else ["(no file)"]
        print(f"--- {name} (last {tail} lines)", *lines, sep="\n")


def _gateways_routed(admin: int, front: str, tries: int = 40) -> dict[str, int]:
    """Requests Envoy has sent to each gateway (admin /clusters rq_total), after sending
    distinct warm-up requests until both have served some or ``tries`` is spent."""
    from serving.envoy.config import CLUSTER_GATEWAY_REST

    def counts() -> dict[str, int]:
        with urllib.request.urlopen(f"http://127.0.0.1:{admin}/clusters", timeout=5) as resp:
            lines = resp.read().decode().splitlines()
        out = {}
        for line in lines:
            parts = line.split("::")
            if len(parts) == 4 and parts[0] == CLUSTER_GATEWAY_REST and parts[2] == "rq_total":
                out[parts[1]] = int(parts[3])
        return out

    for i in range(tries):
        routed = counts()
        if len(routed) == 2 and min(routed.values()) > 0:
            return routed
        _post(f"{front}/v1/recommendations", {"user_id": f"warm-{i}", "k": 2})
    return counts()


def _gone(pid: int) -> bool:
    stat = pathlib.Path(f"/proc/{pid}/stat")
    return not stat.exists() or stat.read_text().split()[2] == "Z"


def test_serve_recommends_through_envoy_survives_a_crash_and_stops_cleanly(
    model_base: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    from recommend_model import expected_items

    port = free_port()
    # Deadlines sized for a loaded 2-core CI machine: right after the kill below, the restarting
    # gateway imports TensorFlow on one core while requests are served. A cache miss that outlives
    # the gateway's 500 ms model deadline is a 503 that Envoy retries on the only other gateway,
    # the dead one.
    settings = tmp_path / "serving.yaml"
    settings.write_text(
        "envoy:\n  request_timeout_ms: 10000\n  per_try_timeout_ms: 4000\n"
        "gateways:\n  model_timeout_ms: 3000\n"
    )
    proc = _start_serve(
        tmp_path, model_base, "--port", str(port), "--model-servers", "2", "--gateways", "2",
        "--config", str(settings),
    )  # fmt: skip
    out, err = _Lines(proc.stdout), _Lines(proc.stderr)
    try:
        out.wait_for(r"AIQLeads serving stack up", timeout=240)
        assert any(f"http://127.0.0.1:{port}/v1/recommendations" in line for line in out.lines)
        front = f"http://127.0.0.1:{port}"
        _use_dev_token(tmp_path / "run")

        # REST through Envoy: the fixture model's ranking, then the same answer from cache.
        want = [[lead, pytest.approx(score)] for lead, score in expected_items("alice", 3, 1)]
        first = _post(f"{front}/v1/recommendations", {"user_id": "alice", "k": 3})
        assert [[i["lead_id"], i["score"]] for i in first["items"]] == want
        assert first["model_version"] == 1
        again = _post(f"{front}/v1/recommendations", {"user_id": "alice", "k": 3})
        assert again["cached"] is True and again["items"] == first["items"]

        # gRPC on the same front port.
        from serving.protos.generated import recommendations_pb2 as pb
        from serving.protos.generated import recommendations_pb2_grpc as pb_grpc

        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            reply = pb_grpc.RecommendationsStub(channel).Recommend(
                pb.RecommendRequest(user_id="bob", k=2), timeout=10, metadata=tuple(AUTH.items())
            )
        assert [(i.lead_id, pytest.approx(i.score)) for i in reply.items] == expected_items(
            "bob", 2, 1
        )

        # The CLI client prints the same table.
        table = subprocess.run(
            [str(BIN / "aiqleads"), "recommend", "--user", "alice", "--k", "3", "--url", front,
             "--run-dir", str(tmp_path / "run")],
            capture_output=True, text=True, timeout=120, check=True,
        ).stdout  # fmt: skip
        rows = [line.split() for line in table.splitlines() if re.match(r"^\s+\d+\s", line)]
        assert [(r[1], float(r[2])) for r in rows] == [
            (lead, pytest.approx(score, abs=1e-4)) for lead, score in expected_items("alice", 3, 1)
        ]

        # Every model server exports TF Serving's Prometheus metrics on its REST port; the
        # misses above (alice over REST, bob over gRPC) were counted by the servers.
        answered = 0
        for i in range(2):
            found = out.wait_for(
                rf"model-server-{i}\s+http://127\.0\.0\.1:(\d+)/v1/models/(\S+) \(metrics (\S+),", 5
            )
            url = f"http://127.0.0.1:{found.group(1)}{found.group(3)}"
            with urllib.request.urlopen(url, timeout=5) as resp:
                text = resp.read().decode()
            ok = re.search(
                rf'^:tensorflow:serving:request_count\{{model_name="{found.group(2)}",'
                r'status="OK"\} (\d+)',
                text,
                re.M,
            )
            answered += int(float(ok.group(1))) if ok else 0
        assert answered >= 2, "the model servers' metrics do not count the two misses"

        # A crashed gateway is restarted by the supervisor; requests keep succeeding. Both
        # gateways turned healthy in the same health-check round; Envoy's load balancer must
        # route to both right away (update_merge_window 0), so the retries after the kill
        # have a live gateway to go to.
        from serving.envoy.config import CLUSTER_GATEWAY_REST
        from serving.envoy.runtime import healthy_members

        admin = int(out.wait_for(r"Envoy admin\s+http://127\.0\.0\.1:(\d+)/", 5).group(1))
        assert healthy_members(admin, CLUSTER_GATEWAY_REST) == 2
        routed = _gateways_routed(admin, front)
        assert len(routed) == 2 and min(routed.values()) > 0, routed
        gateway_pid = int(err.wait_for(r"gateway-0 ready \(pid (\d+)", 5).group(1))
        os.kill(gateway_pid, signal.SIGKILL)
        try:
            for i in range(20):
                assert _post(f"{front}/v1/recommendations", {"user_id": f"u{i}", "k": 2})["items"]
        except BaseException:
            _print_envoy_logs(tmp_path / "run" / "logs", admin, err.lines)
            raise
        err.wait_for(r"gateway-0 restarted \(pid \d+", timeout=60)
    finally:
        pids = err.pids()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    assert code == 0, "\n".join(err.lines[-10:])
    assert len(pids) >= 6  # redis, 2 model servers, envoy, 2 gateways (+ the restart)
    wait_until(lambda: all(_gone(p) for p in pids), 10, "every child process gone")
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2)


def test_sigterm_during_startup_is_a_clean_stop(model_base: pathlib.Path, tmp_path) -> None:
    """A stop requested while the stack is still starting (what `make demo` does when its
    recommendations come back before the launcher's own routing check ends) exits 0,
    says it stops, never "aborted", and leaves no child behind."""
    proc = _start_serve(
        tmp_path, model_base, "--port", "0", "--model-servers", "1", "--gateways", "1"
    )
    out, err = _Lines(proc.stdout), _Lines(proc.stderr)
    try:
        err.wait_for(r"redis ready \(pid", timeout=120)  # the model server is still loading
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    wait_until(lambda: len(err.lines) > 0 and any("stopping" in x for x in err.lines), 5, "stop")
    assert not any("aborted" in line for line in err.lines + out.lines)
    children = err.pids()
    assert children, "the launcher printed no child pid"
    wait_until(lambda: all(_gone(pid) for pid in children), 30, "every child to exit")
