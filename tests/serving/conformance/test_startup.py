"""Start-up behaviour a running server cannot show: the server binary is run here.

`AIQLEADS_CONFORMANCE_BINARY` is the command that starts the server under test (split like a
shell word list; e.g. `tensorflow_model_server`, or `docker run --rm -v <TF Serving test
data>:/td tensorflow/serving`), its test data folder `AIQLEADS_CONFORMANCE_TESTDATA` as in
conftest.py. Default: this checkout's `aiqleads-model-server` on its own test data.
"""

from __future__ import annotations

import os
import shlex
import subprocess

import conformance_support as support

CONFIG_ERROR = "Error parsing text-format tensorflow.serving.ModelServerConfig"


def _server_command() -> list[str]:
    command = os.environ.get("AIQLEADS_CONFORMANCE_BINARY")
    if command:
        return shlex.split(command)
    from serving.process import model_server_binary

    return [model_server_binary()]


def test_bad_model_config_file_fails_start_up_with_the_parser_message():
    testdata = os.environ.get("AIQLEADS_CONFORMANCE_TESTDATA", str(support.TESTDATA))
    bad = f"{testdata}/bad_model_config.txt"  # one line: `improperly formatted file`
    proc = subprocess.run(
        [*_server_command(), f"--model_config_file={bad}"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode != 0
    # TF Serving's words, then the parser's: the first word is not a ModelServerConfig field.
    lines = [line for line in proc.stderr.splitlines() if CONFIG_ERROR in line]
    assert lines, proc.stderr
    assert (
        'Message type "tensorflow.serving.ModelServerConfig" has no field named "improperly".'
        in lines[0]
    )
