"""`aiqleads pipeline run`: help and one-line errors on bad input (no pipeline run)."""

from __future__ import annotations

from cli.main import main


def test_help_lists_the_options(capsys):
    assert main(["pipeline", "run", "--help"]) == 0
    out = capsys.readouterr().out
    for option in ("--data", "--config", "--as-of", "--stage"):
        assert option in out


def test_missing_data_dir_is_one_line_exit_2(tmp_path, capsys):
    assert main(["pipeline", "run", "--data", str(tmp_path / "absent")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --data") and "\n" not in err


def test_bad_config_is_one_line_exit_2(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("example_gen:\n  window_spans: 1\n")
    assert main(["pipeline", "run", "--config", str(path), "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "invalid pipeline config" in err and "window_spans" in err and "\n" not in err


def test_bad_as_of_is_a_usage_error(tmp_path, capsys):
    assert main(["pipeline", "run", "--data", str(tmp_path), "--as-of", "13/01/2026"]) == 2
    assert "YYYY-MM-DD" in capsys.readouterr().err


def test_cli_stages_are_the_pipeline_stages():
    # The CLI spells the stages itself so that `--help` does not import TFX.
    from cli.commands.options import STAGES
    from pipeline.pipeline import STAGES as WIRED_STAGES

    assert STAGES == WIRED_STAGES


def test_failure_reason_is_the_telling_line():
    from pipeline.local_runner import one_line

    tf_error = (
        "Graph execution error:\n\nDetected at node loss/Squeeze defined at (most recent call last):\n"
        '  File "x.py", line 1, in <module>\n\nCan not squeeze dim[0], got 256\n'
        "\t [[{{node loss/Squeeze}}]] [Op:__inference_train_function_1]"
    )
    assert one_line(tf_error) == "Graph execution error: Can not squeeze dim[0], got 256"
    assert one_line("drift check failed: drift on region\n\nDrift check: FAILED") == (
        "drift check failed: drift on region"
    )
    assert one_line("") == ""


def test_drift_summary_reads_the_reports_file(tmp_path, capsys):
    from cli.commands.pipeline import _print_drift
    from components.drift_check import drift, executor

    report = drift.DriftReport(
        current_span="2026-01-04",
        previous_span=None,
        serving_records=0,
        measurements=(
            drift.Measurement("drift", "price", "jensen_shannon_divergence", 0.05, 0.1),
            drift.Measurement("drift", "region", "l_infinity", 0.3, 0.2),
        ),
    )
    executor.write_report(report, str(tmp_path))
    _print_drift(str(tmp_path))
    # region is 1.5x its limit, price 0.5x: region first.
    assert capsys.readouterr().out == (
        "\ndrift check: FAILED (2026-01-04 vs None, 2 features, serving records 0; run reason -)\n"
        "  drift region: l_infinity 0.3000 (limit 0.2000)\n"
        "  drift price: jensen_shannon_divergence 0.0500 (limit 0.1000)\n"
    )
    _print_drift(str(tmp_path / "absent"))
    assert capsys.readouterr().out == ""
