"""`aiqleads data ...` through the real console entry: exit codes, summaries, one-line errors."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import pathlib
import subprocess
import sys

import pytest

from aiqleads import contracts, layout
from aiqleads.data import adapters, validate
from cli.main import main


@dataclasses.dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def run(*args: str) -> Result:
    """Run `aiqleads data ARGS` in this process (the CLI's own main, its error handling)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["data", *args])
    return Result(code, out.getvalue(), err.getvalue())


def run_console(*args: str) -> subprocess.CompletedProcess:
    """Run the real `aiqleads` console entry in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "cli.main", "data", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def assert_one_line_error(result, text: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr
    assert any(text in line for line in lines), result.stderr
    errors = [line for line in lines if line.startswith(("error:", "Error:"))]
    assert len(errors) == 1


@pytest.fixture(scope="module")
def small_set(tmp_path_factory) -> pathlib.Path:
    out = tmp_path_factory.mktemp("cli") / "smoke"
    result = run("synth", "--preset", "smoke", "--days", "5", "--events", "2000", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stdout and "spans 2026-01-01..2026-01-05 (5)" in result.stdout
    return out


def test_describe_and_validate_summaries(small_set):
    described = run("describe", str(small_set))
    assert described.returncode == 0, described.stderr
    assert "leads 200, users 300" in described.stdout
    assert "spans       5 (2026-01-01 .. 2026-01-05)" in described.stdout
    assert "event mix   view" in described.stdout and "price (USD) p5" in described.stdout
    checked = run("validate", str(small_set))
    assert checked.returncode == 0, checked.stderr
    assert "12 files; valid" in checked.stdout  # leads, users, 5 x events, 5 x market


def test_validate_rejects_then_quarantines_a_bad_span(small_set, tmp_path):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(small_set, root)
    events = layout.span_dir(root, layout.list_spans(root)[2]) / contracts.EVENTS.file_name
    good_lines = events.read_text().count("\n") - 1
    with events.open("a") as f:
        f.write("e99999999,u000001,l000001,like,2026-01-03T10:00:00Z,\n")  # unknown event type
        f.write("e99999998,nobody,l000001,view,2026-01-03T10:00:00Z,\n")  # unknown user
    rejected = run("validate", str(root))
    assert_one_line_error(rejected, f"{events} line {good_lines + 2}, column event_type")
    fixed = run("validate", str(root), "--quarantine")
    assert fixed.returncode == 0, fixed.stderr
    assert "2 bad rows quarantined" in fixed.stdout
    quarantined = validate.quarantine_path_for(events).read_text().splitlines()
    assert len(quarantined) == 3 and "no such user in users.csv" in quarantined[2]
    assert events.read_text().count("\n") - 1 == good_lines
    assert run("validate", str(root)).returncode == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["describe", "/no/such/dir"], "no such data-set directory"),
        (["validate", "/no/such/dir"], "no such data-set directory"),
        (["synth", "--days", "1", "--out", "/tmp/x"], "Invalid value for '--days'"),
        (["synth", "--drift", "quake", "--out", "/tmp/x"], "Invalid value for '--drift'"),
        (
            ["synth", "--start-date", "2026-13-01", "--out", "/tmp/x"],
            "'2026-13-01' is not a date (YYYY-MM-DD)",
        ),
        (
            [
                "synth",
                "--preset",
                "smoke",
                "--days",
                "5",
                "--drift",
                "event_mix",
                "--drift-days",
                "5",
                "--out",
                "/tmp/aiq-never",
            ],
            "drift_days=5 must be in [1, days=5)",
        ),
        (
            ["synth", "--candidates-per-view", "0", "--out", "/tmp/aiq-never"],
            "Invalid value for '--candidates-per-view'",
        ),
        (
            ["import", "barossa", "--out", "/tmp/aiq-never", "--source", "/no/such"],
            "pass --source DIR",
        ),
        (
            ["import", "zillow", "--out", "/tmp/x"],
            "Invalid value for '{kingcounty|barossa|uci-restaurant}'",
        ),
    ],
)
def test_bad_input_is_one_line_with_exit_2(args, message):
    assert_one_line_error(run(*args), message)


def test_synth_refuses_a_non_empty_folder(small_set):
    assert_one_line_error(
        run("synth", "--preset", "smoke", "--out", str(small_set)), "pass --overwrite"
    )


@pytest.mark.skipif(not adapters.default_shared_data().is_dir(), reason="no shared data")
def test_import_uci_restaurant(tmp_path):
    result = run("import", "uci-restaurant", "--out", str(tmp_path / "uci"))
    assert result.returncode == 0, result.stderr
    assert "leads 130, users 138, events 1,161, market 90; 30 spans" in result.stdout


def test_help_everywhere():
    for sub in ([], ["synth"], ["import"], ["validate"], ["describe"]):
        result = run(*sub, "--help")
        assert result.returncode == 0 and "Usage:" in result.stdout


def test_console_entry_reports_one_line_error():
    result = run_console("describe", "/no/such/dir")
    assert_one_line_error(result, "error: /no/such/dir: no such data-set directory")
