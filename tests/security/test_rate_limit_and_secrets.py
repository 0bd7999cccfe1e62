"""A fair rate limit (one client flooding leaves another's requests alone), and no secret in
any process's arguments or in the logs of a running stack."""

from __future__ import annotations

import os
import pathlib
import re
import statistics
import threading
import time

import pytest

from serving import auth
from serving.envoy.security import RATE_LIMIT_KIND_HEADER
from tests.security.conftest import CLIENT_BURST, SECRET_IN_ARGUMENT

pytestmark = pytest.mark.e2e
RECOMMEND = "/v1/recommendations"


def test_one_client_flooding_does_not_slow_another(secure_stack) -> None:
    flooder = secure_stack.token(subject="flooder")
    calm = secure_stack.token(subject="calm")
    secure_stack.post(RECOMMEND, {"user_id": "calm-user", "k": 2}, calm)  # warm the cache

    def calm_latencies(count: int) -> tuple[list[int], list[float]]:
        statuses, seconds = [], []
        for _ in range(count):
            start = time.perf_counter()
            statuses.append(secure_stack.post(RECOMMEND, {"user_id": "calm-user", "k": 2}, calm)[0])
            seconds.append(time.perf_counter() - start)
            time.sleep(0.05)  # 20 req/s: well inside its own bucket
        return statuses, seconds

    _, quiet = calm_latencies(20)
    flood_statuses: list[tuple[int, str | None]] = []
    stop = threading.Event()

    def flood() -> None:
        while not stop.is_set():
            status, _, headers = secure_stack.post(
                RECOMMEND, {"user_id": "flood-user", "k": 2}, flooder
            )
            flood_statuses.append((status, headers.get(RATE_LIMIT_KIND_HEADER)))

    threads = [threading.Thread(target=flood) for _ in range(6)]
    for t in threads:
        t.start()
    try:
        time.sleep(1.0)  # the flooder's burst is spent
        statuses, loaded = calm_latencies(40)
    finally:
        stop.set()
        for t in threads:
            t.join()
    limited = [kind for status, kind in flood_statuses if status == 429]
    assert len(flood_statuses) > CLIENT_BURST, "the flood did not exceed its own burst"
    assert limited and set(limited) == {"client"}, "the flooder is stopped by its own bucket"
    assert statuses == [200] * 40, "the calm client was never limited"
    # Its latency stays of the same order (the machine is shared with the flood's own CPU).
    assert statistics.median(loaded) < max(10 * statistics.median(quiet), 0.05)


def _secrets(stack) -> dict[str, str]:
    run_dir = stack.settings.run_dir
    secrets_dir = auth.secrets_dir(run_dir)
    values = {
        "dev token": stack.token,
        "signing key": (secrets_dir / auth.SIGNING_KEY_FILE).read_text().splitlines()[1],
        "attribution key": (secrets_dir / "attribution.key").read_text().strip(),
    }
    return values


def test_no_secret_in_process_arguments_or_logs(secure_stack) -> None:
    stack = secure_stack.stack
    # Traffic first, so that the logs have seen requests that carried the token.
    for i in range(5):
        assert secure_stack.post(RECOMMEND, {"user_id": f"u{i}", "k": 1}, stack.token)[0] == 200
    secrets = _secrets(stack)
    pids = {c.pid for c in stack.children if c.pid}
    assert len(pids) == len(stack.children)
    cmdlines = {}
    for pid in [*pids, os.getpid()]:
        raw = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes()
        cmdlines[pid] = raw.replace(b"\0", b" ").decode(errors="replace")
    logs = {
        str(path): path.read_text(errors="replace")
        for path in (stack.settings.run_dir / "logs").iterdir()
        if path.is_file()
    }
    assert logs, "the stack wrote no logs"
    for name, value in secrets.items():
        assert len(value) >= 16
        for pid, line in cmdlines.items():
            assert value not in line, f"the {name} is in the arguments of pid {pid}"
        for path, text in logs.items():
            assert value not in text, f"the {name} is in {path}"
    # Nothing that looks like a password in any argument either: no --requirepass, no URL
    # with credentials (scheme://user:password@), "password" only in a --*-password-file flag.
    for pid, line in cmdlines.items():
        assert not SECRET_IN_ARGUMENT.search(line), f"pid {pid}: {line}"
        words = [w for w in line.split() if "password" in w.lower()]
        assert all(re.fullmatch(r"--[a-z-]+-password-file=\S+", w) for w in words), words
