"""The server under test: given by URL (a real TF Serving, say) or started here.

Set `AIQLEADS_CONFORMANCE_GRPC=host:port` and `AIQLEADS_CONFORMANCE_REST=http://host:port` to
test a running server that has TF Serving's `good_model_config.txt` loaded (half_plus_two and
half_plus_three). `AIQLEADS_CONFORMANCE_TESTDATA` is the reference models' folder as *that
server* sees it (for the reload tests; default: this checkout's `../shared/...`). When the URLs
are unset, `aiqleads-model-server` is started on free loopback ports and stopped by PID.
"""

from __future__ import annotations

import os
import pathlib
import sys

import grpc
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from conformance_support import TESTDATA, Target, model_config_text  # noqa: E402


@pytest.fixture(scope="session")
def target(tmp_path_factory) -> Target:
    grpc_env = os.environ.get("AIQLEADS_CONFORMANCE_GRPC")
    rest_env = os.environ.get("AIQLEADS_CONFORMANCE_REST")
    testdata = os.environ.get("AIQLEADS_CONFORMANCE_TESTDATA", str(TESTDATA))
    if grpc_env and rest_env:
        yield Target(grpc_env, rest_env.rstrip("/"), testdata)
        return
    from serving.process import start_model_server

    work = tmp_path_factory.mktemp("conformance")
    config = work / "models.config"
    config.write_text(model_config_text(str(TESTDATA)))
    server = start_model_server(
        [
            f"--model_config_file={config}",
            f"--monitoring_config_file={TESTDATA / 'monitoring_config.txt'}",
        ],
        work / "server.log",
    )
    try:
        server.wait_ready("half_plus_two")
        yield Target(server.grpc_target, server.rest_url, str(TESTDATA))
    finally:
        code = server.stop()
        assert code == 0, f"server exit code {code}: {server.log_tail()}"


@pytest.fixture(scope="session")
def channel(target):
    with grpc.insecure_channel(target.grpc_target) as ch:
        grpc.channel_ready_future(ch).result(timeout=30)
        yield ch
