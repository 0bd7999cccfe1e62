"""The online-quality monitor as a process: it follows a real event store and exports counts."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from aiqleads.events.log import EventLog
from aiqleads.events.records import Feedback, Impression
from serving.process import free_port, wait_until


def _metrics(url: str) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _arm(version: int, variant: str, **extra: str) -> tuple:
    return tuple(sorted({"model_version": str(version), "variant": variant, **extra}.items()))


@pytest.fixture
def monitor(event_store):
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable, "-m", "monitoring",
            f"--port={port}", f"--event-store-url={event_store.url}",
            "--window-seconds=600", "--block-ms=100",
        ],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/metrics"
    wait_until(lambda: _reachable(url), 30, "the monitor")
    yield url
    process.terminate()
    process.wait(timeout=10)


def _reachable(url: str) -> bool:
    try:
        _metrics(url)
        return True
    except OSError:
        return False


def test_monitor_counts_arms_from_the_log_within_seconds(event_store, monitor):
    log = EventLog(event_store.url)
    now = time.time()

    def imp(rid, version, variant, user):
        return Impression(rid, now, user, version, variant, 3, ("a", "b", "c"), (0.3,) * 3, "miss")

    def fb(rid, lead, event, version, variant):
        return Feedback(
            f"{rid}{lead}{event}", rid, now + 1, "u", lead, event, version, variant, now
        )

    log.append_impressions([imp("r1", 7, "stable", "u1"), imp("r2", 7, "stable", "u2")])
    log.append_impressions([imp("r3", 8, "canary", "u1")])
    log.append_feedback(fb("r1", "a", "view", 7, "stable"))
    log.append_feedback(fb("r1", "a", "click", 7, "stable"))
    log.append_feedback(fb("r3", "c", "inquiry", 8, "canary"))
    log.append_feedback(fb("r9", "c", "click", 8, "canary"))  # its answer was never logged
    log.close()

    def counted() -> bool:
        m = _metrics(monitor)
        return m.get(("aiqleads_online_events_total", _arm(8, "canary", event_type="inquiry"))) == 1

    waited = wait_until(counted, 15, "the monitor to count the feedback")
    assert waited < 15
    m = _metrics(monitor)
    assert m[("aiqleads_online_impressions_total", _arm(7, "stable"))] == 2
    assert m[("aiqleads_online_shown_items_total", _arm(7, "stable"))] == 6
    assert m[("aiqleads_online_users", _arm(7, "stable"))] == 2
    assert m[("aiqleads_online_events_total", _arm(7, "stable", event_type="click"))] == 1
    assert m[("aiqleads_online_hits_total", _arm(7, "stable"))] == 1
    assert m[("aiqleads_online_hits_total", _arm(8, "canary"))] == 1
    assert m[("aiqleads_online_engaged_items_total", _arm(8, "canary"))] == 1
    assert m[("aiqleads_monitor_event_store_up", ())] == 1
    assert m[("aiqleads_online_last_event_timestamp_seconds", ())] == pytest.approx(now + 1)


def test_monitor_rides_out_a_store_restart(event_store, monitor):
    event_store.kill()
    wait_until(lambda: _metrics(monitor)[("aiqleads_monitor_event_store_up", ())] == 0, 15, "down")
    event_store.start()
    log = EventLog(event_store.url)
    now = time.time()
    log.append_impressions([Impression("r1", now, "u", 3, "stable", 1, ("a",), (0.5,), "hit")])
    log.close()
    wait_until(
        lambda: (
            _metrics(monitor).get(("aiqleads_online_impressions_total", _arm(3, "stable"))) == 1
        ),
        20,
        "the monitor to read again",
    )
