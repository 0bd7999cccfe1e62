"""The entry points a new user meets first: `make setup` and the `aiqleads` command."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
AIQLEADS = pathlib.Path(sys.executable).with_name("aiqleads")


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_setup_is_idempotent_and_fast_on_a_set_up_machine():
    # `make test` has just run setup, so a second run must find nothing to do.
    result = run("bash", "scripts/setup.sh")
    assert result.returncode == 0, result.stderr
    assert "already set up, nothing to do" in result.stdout
    seconds = int(result.stdout.split("nothing to do (")[1].split(" s)")[0])
    assert seconds < 10


def test_cli_help_lists_the_command_groups():
    result = run(str(AIQLEADS), "--help")
    assert result.returncode == 0
    assert "data" in result.stdout


def test_cli_token_option_reads_the_auth_token_variable():
    # The CLI spells the variable itself so that `--help` does not import the JWT libraries.
    from cli.commands.options import TOKEN_ENV
    from serving import auth

    assert TOKEN_ENV == auth.TOKEN_ENV


@pytest.mark.parametrize("args", [["no-such-command"], ["data", "describe", "/no/such/dir"]])
def test_cli_bad_input_is_one_line_error_without_traceback(args):
    result = run(str(AIQLEADS), *args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "rror" in result.stderr and len(result.stderr.strip().splitlines()) <= 5, result.stderr


def test_tensorflow_teardown_noise_is_dropped_and_other_unraisables_still_print():
    """The CLI's unraisable hook drops TensorFlow's exit-time AtomicFunction.__del__
    TypeErrors (they followed every successful pipeline run) and nothing else."""
    script = (
        "import sys\n"
        "from cli.main import quiet_tensorflow_teardown\n"
        "sys.unraisablehook = quiet_tensorflow_teardown\n"
        "class AtomicFunction:\n"
        "    def __del__(self):\n"
        "        raise TypeError('teardown noise')\n"
        "class Other:\n"
        "    def __del__(self):\n"
        "        raise TypeError('a real problem')\n"
        "a, b = AtomicFunction(), Other()\n"
        "del a, b\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "teardown noise" not in result.stderr
    assert "a real problem" in result.stderr
