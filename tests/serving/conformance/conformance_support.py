"""Helpers of the conformance suite: the reference data folder, its model config, a REST call."""

from __future__ import annotations

import dataclasses
import json
import pathlib
import urllib.error
import urllib.request

REPO = pathlib.Path(__file__).resolve().parents[3]
TESTDATA = REPO.parent / "shared" / "testdata" / "tf_serving"


@dataclasses.dataclass(frozen=True)
class Target:
    """The server under test."""

    grpc_target: str
    rest_url: str
    testdata: str  # the reference models' folder as the server sees it


def model_config_text(testdata: str) -> str:
    """TF Serving's good_model_config.txt with its placeholders filled in for `testdata`."""
    text = (TESTDATA / "good_model_config.txt").read_text()
    text = text.replace("${TEST_HALF_PLUS_TWO_DIR}", f"{testdata}/saved_model_half_plus_two_cpu")
    return text.replace("${TEST_HALF_PLUS_THREE_DIR}", f"{testdata}/saved_model_half_plus_three")


def call(base: str, method: str, path: str, body=None, raw: bytes | None = None):
    """(HTTP status, parsed JSON or text) of one request; errors are answers, not raises."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            status, payload = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, payload = e.code, e.read()
    try:
        return status, json.loads(payload)
    except ValueError:
        return status, payload.decode(errors="replace")
