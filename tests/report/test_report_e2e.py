"""The run report of the loop world's smoke run, opened in headless Chromium, and the
terminal of that run (`aiqleads pipeline run`, quiet by default).

No pipeline run of its own: the session's `loop_world` ran the pipeline once to a push.
Other tests may run it again on that world, so the run is picked by the id its folder
recorded. Chromium gets a new profile, no network (every host resolves to nothing), and is
stopped with its process group.
"""

from __future__ import annotations

import contextlib
import html
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess

import pytest
from PIL import Image, ImageStat

from pipeline import run_log
from pipeline.report import run_artifacts

pytestmark = pytest.mark.e2e

PIPELINE = "aiqleads-recommender"
# A line of TensorFlow's C++ logging (which lines a CPU prints varies: oneDNN's notice only
# where TensorFlow turns oneDNN on).
TF_CPP_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] tensorflow/", re.M)
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND",  # a fetch would fail, not reach the network
    "--window-size=1280,2400",
)
SECTIONS = {"data", "model", "plots", "geography", "cost"}
# The figures a first run (no baseline yet) has, each with its data-figure name.
FIGURES = {
    "span-histograms",
    "drift-thresholds",
    "slice-region",
    "slice-property_type",
    "slice-price_band",
    "calibration",
    "precision-recall-at-k",
    "score-distributions",
    "geo-features",
    "drift-map",
    "region-shift",
    "component-times",
}
# Appended to a copy of the report: after layout, the size of every figure's picture and of
# every table, and every reference to something outside the page.
PROBE = """
<script>
window.addEventListener("load", () => {
  const box = (e) => { const r = e.getBoundingClientRect(); return [r.width, r.height]; };
  const out = {
    sections: [...document.querySelectorAll("section[data-section]")].map(s => s.dataset.section),
    figures: [...document.querySelectorAll("figure.figure")].map(f =>
      [f.dataset.figure, ...box(f.querySelector("svg, img"))]),
    images_loaded: [...document.querySelectorAll("figure.figure img")].every(i =>
      i.complete && i.naturalWidth > 0),
    tables: [...document.querySelectorAll("table.data")].map(box),
    references: [...document.querySelectorAll("[src], [href], link, script[src]")].map(e =>
      e.getAttribute("src") || e.getAttribute("href") || ""),
  };
  const pre = document.createElement("pre");
  pre.id = "probe";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>
"""


def _chromium(args: list[str], profile: pathlib.Path) -> subprocess.CompletedProcess:
    binary = shutil.which("chromium")
    if binary is None:
        pytest.fail("chromium is not installed: make setup installs it (Debian package)")
    process = subprocess.Popen(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: stopped as one below
    )
    try:
        stdout, stderr = process.communicate(timeout=120)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def _first_run_folder(loop_world) -> pathlib.Path:
    """The folder of the world's first `aiqleads pipeline run` (folders are named by start
    time, so it sorts first)."""
    folders = sorted(run_log.runs_root(loop_world.runs, PIPELINE).glob(f"*/{run_log.RUN_FILE}"))
    assert folders, "the loop world's pipeline run left no run folder"
    return folders[0].parent


def _run_id(folder: pathlib.Path) -> str:
    return json.loads((folder / run_log.RUN_FILE).read_text())[run_log.RUN_ID_KEY]


def test_pipeline_run_keeps_its_terminal_quiet_and_writes_the_log_and_report(loop_world):
    run = loop_world.first_run
    if run is None:
        pytest.skip("a reused loop world (AIQLEADS_LOOP_WORLD) has no first run to read")
    terminal = run.stdout + run.stderr
    for noise in ("WARNING", "oneDNN", "FutureWarning", "warnings.warn", "Epoch 1/"):
        assert noise not in terminal, f"{noise!r} reached the terminal:\n{terminal[-3000:]}"
    assert not TF_CPP_LINE.search(terminal), terminal[-3000:]
    folder = _first_run_folder(loop_world)
    log = folder / run_log.LOG_FILE
    report = folder / run_log.REPORT_FILE
    # Where the log is, said at the start; where the report and log are, in the summary.
    lines = run.stdout.splitlines()
    assert lines[1].startswith(f"log: {log} ")
    assert lines[-1] == f"report: {report}; log: {log}"
    assert f"run {_run_id(folder)} finished" in run.stdout
    assert re.search(r"^\[\d+/\d+\] Pusher done in", run.stdout, re.MULTILINE)
    # The libraries' output is in the log instead (TF_CPP_MIN_LOG_LEVEL was 0 for this run).
    text = log.read_text()
    assert TF_CPP_LINE.search(text) and "FutureWarning" in text
    assert report.stat().st_size > 100_000


def test_report_renders_for_the_smoke_run_and_opens_offline_in_chromium(loop_world, tmp_path):
    from loop_fixtures import run_cli

    run_id = _run_id(_first_run_folder(loop_world))
    out = tmp_path / "report"
    result = run_cli(
        "report", "--config", str(loop_world.config), "--run", run_id, "--out", str(out)
    )
    report = out / run_log.REPORT_FILE
    assert f"report of run {run_id}: {report}" in result.stdout
    assert "WARNING" not in result.stdout + result.stderr
    page = report.read_text()
    assert run_id in page
    # Self-contained: no reference to anything outside the file.
    assert not re.search(r"""(?:src|href)\s*=\s*["'](?!data:|#)""", page)

    probe_page = tmp_path / "probe.html"
    probe_page.write_text(page.replace("</body>", PROBE + "</body>"))
    dom = _chromium(["--dump-dom", probe_page.as_uri()], tmp_path / "profile-dom").stdout
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.DOTALL)
    assert found, f"the probe did not run; Chromium printed:\n{dom[-2000:]}"
    probe = json.loads(html.unescape(found.group(1)))

    assert set(probe["sections"]) == SECTIONS
    sizes = {name: (w, h) for name, w, h in probe["figures"]}
    assert set(sizes) >= FIGURES, f"missing figures: {FIGURES - set(sizes)}"
    for name, (width, height) in sizes.items():
        assert width > 150 and height > 100, f"figure {name} is {width}x{height}"
    assert probe["images_loaded"]
    assert len(probe["tables"]) >= 12
    assert all(w > 50 and h > 20 for w, h in probe["tables"]), probe["tables"]
    assert all(ref.startswith(("data:", "#")) for ref in probe["references"])

    shot = tmp_path / "report.png"
    _chromium([f"--screenshot={shot}", report.as_uri()], tmp_path / "profile-shot")
    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 2400)
    # Not a blank page: many colours, and the pixels vary (text, tables, the first figures).
    assert len(image.getcolors(maxcolors=1 << 20) or []) > 200
    assert max(ImageStat.Stat(image).stddev) > 20


def test_an_unknown_run_is_named_in_the_error(loop_world):
    from pipeline import config as config_lib

    cfg = config_lib.load_config(loop_world.config)
    with pytest.raises(run_artifacts.RunNotFound, match="no run 'no-such-run' of pipeline"):
        run_artifacts.find(cfg.metadata_path, cfg.name, "no-such-run")
