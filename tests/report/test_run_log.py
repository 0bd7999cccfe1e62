"""`pipeline.run_log.capture`: what the libraries print goes to the run's log; the progress
lines, and in verbose mode everything, reach the terminal.

The capture works on file descriptors 1 and 2, so each case runs in a child process whose
stdout and stderr are the "terminal" the test reads.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import textwrap

from pipeline import run_log

# Every way a library writes: print, a Python warning, a logging record, a C++-style write to
# descriptor 2 (TensorFlow's logs), and a subprocess (Beam's workers) writing to its stderr.
CHILD = textwrap.dedent(
    """
    import logging, os, pathlib, subprocess, sys, warnings
    from pipeline import run_log

    with run_log.capture(pathlib.Path(sys.argv[1]), verbose=sys.argv[2] == "1") as captured:
        captured.say("[1/1] Step done")
        print("Epoch 1/10")
        warnings.warn("a FutureWarning from a dependency", FutureWarning)
        logging.getLogger("apache_beam").warning("WARNING from Beam")
        os.write(2, b"I tensorflow/core/util/port.cc oneDNN custom operations are on\\n")
        subprocess.run([sys.executable, "-c", "import sys; sys.stderr.write('worker says hi\\\\n')"])
    print("summary after the run")
    """
)
LIBRARY_LINES = (
    "Epoch 1/10",
    "FutureWarning",
    "WARNING from Beam",
    "oneDNN custom operations",
    "worker says hi",
)


def _run(tmp_path: pathlib.Path, verbose: bool) -> tuple[subprocess.CompletedProcess, str]:
    log = tmp_path / "run.log"
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(log), "1" if verbose else "0"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=pathlib.Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 0, result.stderr
    return result, log.read_text()


def test_quiet_keeps_library_output_in_the_log_and_progress_on_the_terminal(tmp_path):
    result, log = _run(tmp_path, verbose=False)
    assert result.stdout.splitlines() == ["[1/1] Step done", "summary after the run"]
    assert result.stderr == ""
    for line in LIBRARY_LINES:
        assert line in log
    assert "Step done" not in log


def test_verbose_shows_the_library_output_and_keeps_it_in_the_log(tmp_path):
    result, log = _run(tmp_path, verbose=True)
    assert "[1/1] Step done" in result.stdout
    assert "Epoch 1/10" in result.stdout  # stdout is left alone
    for line in LIBRARY_LINES[1:]:  # everything written to stderr: on the terminal and logged
        assert line in result.stderr
        assert line in log


def test_run_folders_are_new_and_found_by_run_id(tmp_path):
    first = run_log.new_run_folder(tmp_path, "p")
    second = run_log.new_run_folder(tmp_path, "p")
    assert first != second and first.parent == second.parent == tmp_path / "pipeline_runs" / "p"
    run_log.record_run(second, "2026-01-02T03:04:05.000001", "p", "/m.sqlite")
    assert json.loads((second / run_log.RUN_FILE).read_text())["run_id"].startswith("2026-01-02")
    assert run_log.folder_of_run(tmp_path, "p", "2026-01-02T03:04:05.000001") == second
    assert run_log.folder_of_run(tmp_path, "p", "another run") is None
