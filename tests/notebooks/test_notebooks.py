"""Every notebook in notebooks/ runs from its first cell to its last against the smoke run
(nbclient, a fresh kernel each); a cell that raises fails the test, naming the cell.

01-03 read the loop world's first pipeline run (picked by the id its run folder recorded:
other tests may run the pipeline again on that world); 04 reads the session stack's event
log: a real event store holding answers and feedback of two arms, made by hand.
"""

from __future__ import annotations

import importlib.util
import json
import pathlib
import re
import time

import nbformat
import pytest

from aiqleads.events.records import Feedback, Impression
from pipeline import run_log

pytestmark = pytest.mark.e2e

REPO = pathlib.Path(__file__).resolve().parents[2]
PIPELINE = "aiqleads-recommender"
ONLINE = "04_online_quality_and_ab"


def _execute_module():
    spec = importlib.util.spec_from_file_location(
        "notebook_execute", REPO / "notebooks" / "execute.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


EXECUTE = _execute_module()
OFFLINE = [p.stem for p in EXECUTE.notebook_paths() if p.stem != ONLINE]


def _first_run_id(loop_world) -> str:
    records = sorted(run_log.runs_root(loop_world.runs, PIPELINE).glob(f"*/{run_log.RUN_FILE}"))
    assert records, "the loop world's pipeline run left no run folder"
    return json.loads(records[0].read_text())[run_log.RUN_ID_KEY]


def _outputs(path: pathlib.Path) -> tuple[list[dict], list[str]]:
    """(every code cell's outputs, the text of every output) of an executed notebook."""
    notebook = nbformat.read(path, as_version=4)
    cells = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in cells), "a cell did not run"
    outputs = [o for c in cells for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    texts = [
        o.get("text", "")
        if o.output_type == "stream"
        else "\n".join(str(value) for value in o.get("data", {}).values())
        for o in outputs
    ]
    return outputs, texts


def test_the_notebooks_are_stored_without_outputs():
    for path in EXECUTE.notebook_paths():
        assert path.suffix == ".py"  # jupytext percent scripts: outputs cannot be stored
        assert path.read_text().startswith("# ---\n# jupyter:")


@pytest.mark.parametrize("name", OFFLINE)
def test_notebook_runs_against_the_smoke_run(name, loop_world, tmp_path):
    run_id = _first_run_id(loop_world)
    (path,) = EXECUTE.notebook_paths([name])
    out = EXECUTE.execute(path, tmp_path, config=loop_world.config, run=run_id)
    outputs, texts = _outputs(out)
    assert any(run_id in text for text in texts)  # it read the run it was given
    assert any("image/svg" in text or "<svg" in text or "data:image/png" in text for text in texts)
    assert len(outputs) >= 5


def _answers_and_clicks(variant: str, version: int, users: int, clicks: int, t0: float):
    """One answer per user, and a click on the first ``clicks`` of them a second later."""
    answers, feedback = [], []
    for i in range(users):
        rid = f"{variant}-{i}"
        user = f"{variant}-user-{i}"
        ts = t0 + i
        answers.append(
            Impression(rid, ts, user, version, variant, 2, ("l1", "l2"), (0.9, 0.8), "miss")
        )
        if i < clicks:
            feedback.append(
                Feedback(f"fb-{rid}", rid, ts + 1, user, "l1", "click", version, variant, ts)
            )
    return answers, feedback


def test_online_quality_notebook_reads_the_event_log(event_store, event_log, tmp_path):
    # Stable v1: 200 answers, 20 clicked (CTR 0.1); canary v2: 100 answers, 15 clicked
    # (0.15): the canary's CTR ratio is 1.5, a lift of +0.5.
    t0 = time.time() - 3600
    for variant, version, users, clicks in (("stable", 1, 200, 20), ("canary", 2, 100, 15)):
        answers, feedback = _answers_and_clicks(variant, version, users, clicks, t0)
        event_log.append_impressions(answers)
        for fb in feedback:
            event_log.append_feedback(fb)
    (path,) = EXECUTE.notebook_paths([ONLINE])
    out = EXECUTE.execute(path, tmp_path, extra_env={EXECUTE.EVENT_STORE_ENV: event_store.url})
    _, texts = _outputs(out)
    text = "\n".join(texts)
    assert "300 answers and 35 feedback events in the log" in text
    assert "canary v2 against stable v1" in text
    # The A/B table: stable's and the canary's CTR and the lift, exactly (ratios of sums).
    lift = next(t for t in texts if "p-value" in t)
    assert re.search(r"^ctr\s+0\.1\s+\[[^]]+\]\s+0\.15\s+\[[^]]+\]\s+0\.5\s", lift, re.M), lift
