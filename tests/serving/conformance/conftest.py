"""The server under test: given by URL (a real TF Serving, say) or started here.

Set `AIQLEADS_CONFORMANCE_GRPC=host:port` and `AIQLEADS_CONFORMANCE_REST=http://host:port` to
test a running server (a real TF Serving, say). `AIQLEADS_CONFORMANCE_TESTDATA` is the
reference models' folder as *that server* sees it (default: this checkout's `../shared/...`);
the suite first loads its models there through `HandleReloadConfigRequest`
(`conformance_support.model_config_text`), so the server may start with TF Serving's
`good_model_config.txt`. When the URLs are unset, `aiqleads-model-server` is started on free
loopback ports with those models and stopped by PID.
"""

from __future__ import annotations

import os
import pathlib
import sys
import time

import grpc
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from conformance_support import TESTDATA, Target, model_config_text  # noqa: E402

AVAILABLE = 30  # ModelVersionStatus.State


@pytest.fixture(scope="session")
def target(tmp_path_factory) -> Target:
    grpc_env = os.environ.get("AIQLEADS_CONFORMANCE_GRPC")
    rest_env = os.environ.get("AIQLEADS_CONFORMANCE_REST")
    testdata = os.environ.get("AIQLEADS_CONFORMANCE_TESTDATA", str(TESTDATA))
    if grpc_env and rest_env:
        _load_suite_models(grpc_env, testdata)
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


def _load_suite_models(grpc_target: str, testdata: str, timeout: float = 120.0) -> None:
    """Reload a running server's config to the suite's models; wait until all are available."""
    from google.protobuf import text_format
    from tensorflow_serving.apis import (
        get_model_status_pb2,
        model_management_pb2,
        model_service_pb2_grpc,
    )

    request = model_management_pb2.ReloadConfigRequest()
    text_format.Parse(model_config_text(testdata), request.config)
    names = [m.name for m in request.config.model_config_list.config]
    with grpc.insecure_channel(grpc_target) as ch:
        models = model_service_pb2_grpc.ModelServiceStub(ch)
        models.HandleReloadConfigRequest(request, timeout=timeout)
        deadline = time.monotonic() + timeout
        for name in names:
            status = get_model_status_pb2.GetModelStatusRequest()
            status.model_spec.name = name
            while True:
                try:
                    answer = models.GetModelStatus(status, timeout=timeout)
                    if any(v.state == AVAILABLE for v in answer.model_version_status):
                        break
                except grpc.RpcError:
                    pass
                assert time.monotonic() < deadline, f"{name} not available at {grpc_target}"
                time.sleep(0.5)


@pytest.fixture(scope="session")
def channel(target):
    with grpc.insecure_channel(target.grpc_target) as ch:
        grpc.channel_ready_future(ch).result(timeout=30)
        yield ch
