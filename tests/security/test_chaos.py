"""Reliability under load: a rolling restart of every gateway, one at a time, fails no request
(each drains first), and the short variant of benchmarks/chaos.py (kill -9 of every part):
nothing fails for a fault behind Envoy, every killed child comes back, and no acknowledged
feedback is lost."""

from __future__ import annotations

import argparse
import importlib.util
import pathlib
import signal
import sys
import time

import pytest

from serving.process import wait_until

pytestmark = pytest.mark.e2e
REPO = pathlib.Path(__file__).resolve().parents[2]


def _chaos():
    spec = importlib.util.spec_from_file_location("bench_chaos", REPO / "benchmarks" / "chaos.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_chaos"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.timeout(600)
def test_rolling_restart_of_every_gateway_under_load_fails_no_request(secure_stack) -> None:
    chaos = _chaos()
    stack = secure_stack.stack
    s = stack.settings
    users = [f"roll-{i}" for i in range(200)]
    args = argparse.Namespace(rate=40.0, feedback_rate=4.0)
    traffic = chaos.Traffic(
        f"http://{s.envoy.host}:{s.envoy.port}", stack.auth_headers(), users, args
    )
    gateways = [c for c in stack.children if c.name.startswith("gateway-")]
    traffic.thread.start()
    try:
        time.sleep(3)
        for child in gateways:
            old_pid = child.pid
            child.signal(signal.SIGTERM)  # drains: /healthz 503 until Envoy stops routing to it

            def back(child=child, old_pid=old_pid) -> bool:
                stack.supervise_once()  # the restart, from the thread that started the stack
                return child.pid != old_pid and child.ready() and stack.fully_routed()

            wait_until(back, 120, f"{child.name} restarted and routed", interval=0.1)
            assert child.restarts >= 1
        time.sleep(3)
    finally:
        traffic.stop.set()
        traffic.thread.join(timeout=60)
    failed = [o for o in traffic.outcomes if not o.ok]
    assert len(traffic.outcomes) > 200
    assert failed == [], f"{len(failed)} of {len(traffic.outcomes)} failed: {failed[:5]}"


@pytest.mark.timeout(1200)
def test_chaos_short_variant_keeps_availability_and_loses_no_feedback() -> None:
    """kill -9 of a model server, a gateway, Redis, the event store and Envoy under load (one
    minute of slots at 50 req/s; each fault waits for the previous one's recovery, which on a
    loaded 2-core machine takes a model server or gateway a minute or more)."""
    chaos = _chaos()
    summary = chaos.main(["--minutes", "1", "--rate", "50", "--feedback-rate", "5"])
    faults = {r["fault"]: r for r in summary["faults"]}
    assert list(faults) == list(chaos.FAULTS)
    # Every killed child came back: restarted, ready, and routed to by Envoy.
    assert all(r["back_s"] is not None for r in faults.values()), faults
    # Behind Envoy every fault is invisible: retries on the other replica, the cache's
    # breaker, feedback retried by the client while the event store restarts.
    for name in chaos.BEHIND_ENVOY:
        assert faults[name]["failed_recommend"] == 0, faults[name]
        assert faults[name]["failed_feedback"] == 0, faults[name]
        assert faults[name]["errors_for_s"] == 0.0, faults[name]
    assert summary["before_faults"]["failed_recommend"] == 0, summary["before_faults"]
    # Every acknowledged feedback is in the event store, including those around its crash.
    assert summary["acknowledged_feedback"] > 100, summary
    assert summary["lost_feedback"] == 0
    # Envoy's own death costs what was in flight on it and what came before its restart:
    # seconds, not the rest of the run (bounds for a loaded machine).
    envoy = faults["envoy"]
    assert envoy["errors_for_s"] < 30, envoy
    assert envoy["failed_recommend"] < 50 * 30, envoy
    assert summary["recommend_availability"] > 0.95, summary
