"""ExampleGen on Beam against the pandas run: the same records, on one process or two, from a
local or a non-local file system, and the same errors for bad data.

The comparison is record for record (serialized bytes, sorted): negatives are keyed by
(seed, user, time, lead), so no sampling order can differ between the two runs.
"""

from __future__ import annotations

import datetime as dt
import pathlib
import shutil

import apache_beam as beam
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from aiqleads import contracts as c
from aiqleads.data import synth, uris
from aiqleads.errors import DataError
from components.example_gen import beam_examples, interactions, snapshots, tf_examples, window
from components.trainer import run_fn, snapshot_tables

TINY = pathlib.Path(__file__).resolve().parents[2] / "testdata" / "pipeline" / "tiny"
SAMPLING = interactions.SamplingConfig(
    negatives_per_positive=3, hard_fraction=0.5, popularity_exponent=1.0, seed=7
)
MULTI_PROCESS = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]


def _pandas_records(root: str, days: list[dt.date], eval_negatives: int) -> dict[str, list]:
    frame = interactions.build_examples(root, days, 1, SAMPLING, eval_negatives)
    return {
        split: sorted(tf_examples.encode(frame[frame[interactions.SPLIT] == split]))
        for split in interactions.SPLITS
    }


def _beam_records(
    root: str, days: list[dt.date], out: pathlib.Path, eval_negatives: int, argv: list[str]
) -> tuple[dict[str, list], dict[str, int]]:
    run = beam_examples.plan(root, days, 1, SAMPLING, eval_negatives)
    counts = beam_examples.generate(beam.Pipeline(argv=argv), run, str(out))
    records = {}
    for split in interactions.SPLITS:
        files = tf.io.gfile.glob(str(out / f"Split-{split}" / "*.gz"))
        dataset = tf.data.TFRecordDataset(files, compression_type="GZIP")
        records[split] = sorted(r.numpy() for r in dataset)
    return records, counts


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> pathlib.Path:
    out = tmp_path_factory.mktemp("smoke") / "data"
    synth.generate(synth.preset("smoke"), out)
    return out


def test_beam_run_writes_the_pandas_runs_records_on_the_smoke_set(smoke, tmp_path):
    days = window.select_window(smoke, 7)
    want = _pandas_records(str(smoke), days, eval_negatives=20)
    got, counts = _beam_records(str(smoke), days, tmp_path / "out", 20, [])
    for split in interactions.SPLITS:
        assert len(want[split]) > 1000, split
        assert got[split] == want[split], split
        assert counts[split] == len(want[split])
    # History before the window counts: the window's first day has users with earlier events.
    run = beam_examples.plan(str(smoke), days, 1, SAMPLING)
    assert len(run.events) > len(days) and sum(e.check for e in run.events) == len(days)


def test_two_worker_processes_write_the_same_records(tmp_path):
    days = window.select_window(TINY, 4)
    want = _pandas_records(str(TINY), days, eval_negatives=5)
    got, _ = _beam_records(str(TINY), days, tmp_path / "out", 5, MULTI_PROCESS)
    assert got == want
    # The records were spread over both workers' output files.
    assert len(tf.io.gfile.glob(str(tmp_path / "out" / "Split-train" / "*.gz"))) == 2


def _tiny_on_ram(remote: str) -> str:
    """TINY's tables copied to ``remote`` (TensorFlow's in-memory file system, which stands
    for `gs://` or `s3://`: no local path reaches it)."""
    for path in TINY.rglob("*.csv"):
        target = uris.join(remote, *path.relative_to(TINY).parts)
        tf.io.gfile.makedirs(target.rsplit("/", 1)[0])
        tf.io.gfile.copy(str(path), target, overwrite=True)
    return remote


def test_a_data_root_on_another_file_system_reads_like_a_local_one(tmp_path):
    remote = _tiny_on_ram("ram://example_gen_test/data")
    days = window.select_window(remote, 4)
    assert days == window.select_window(TINY, 4)
    assert window.fingerprint(remote, days) == window.fingerprint(TINY, days)
    got, _ = _beam_records(remote, days, tmp_path / "out", 0, [])
    assert got == _pandas_records(str(TINY), days, eval_negatives=0)


def test_the_trainers_snapshot_tables_read_another_file_system_like_a_local_one(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # a path through pathlib would leave a local "ram:" folder
    remote = _tiny_on_ram("ram://snapshot_test/data")
    root, day = run_fn.snapshot_day({run_fn.DATA_ROOT: remote, run_fn.AS_OF: ""})
    assert (root, day) == (remote, uris.list_spans(TINY)[-1])
    far, near = snapshots.DayHistory.read(remote, day), snapshots.DayHistory.read(TINY, day)
    pd.testing.assert_frame_equal(far.events, near.events)
    for load in (
        snapshots.load_catalogue,
        snapshots.load_user_snapshot,
        snapshots.load_pair_history,
        snapshots.load_user_shares,
    ):
        got, want = load(remote, day, far), load(TINY, day, near)
        if isinstance(want, dict):  # the shares: a table per kind
            assert got.keys() == want.keys()
            for key in want:
                pd.testing.assert_frame_equal(got[key], want[key])
        else:
            pd.testing.assert_frame_equal(got, want)
    assert not (tmp_path / "ram:").exists()


def _broken(tmp_path: pathlib.Path, relative: str, old: str, new: str) -> str:
    root = tmp_path / "data"
    shutil.copytree(TINY, root)
    target = root / relative
    target.write_text(target.read_text().replace(old, new, 1))
    return str(root)


@pytest.mark.parametrize(
    ("relative", "old", "new"),
    [
        ("leads.csv", "500000", "lots"),  # a contract violation in a dimension table
        ("spans/2026-01-02/events.csv", ",L4,", ",L404,"),  # an event of an unknown lead
    ],
)
def test_bad_data_fails_with_the_pandas_runs_message(tmp_path, relative, old, new):
    root = _broken(tmp_path, relative, old, new)
    days = window.select_window(root, 4)
    with pytest.raises(DataError) as pandas_error:
        window.validate_window(root, days)
        interactions.build_examples(root, days, 1, SAMPLING)
    run = beam_examples.plan(root, days, 1, SAMPLING)
    with pytest.raises(DataError) as beam_error:
        beam_examples.generate(beam.Pipeline(), run, str(tmp_path / "out"))
    assert str(beam_error.value) == str(pandas_error.value)
    assert new.strip(",") in str(beam_error.value)
    assert not (tmp_path / "out" / "Split-train").exists()
    records = beam_examples.read_quarantine(str(tmp_path / "out"))
    assert records and records[0]["file"].endswith(relative)


def _read_records(out: pathlib.Path) -> dict[str, list]:
    records = {}
    for split in interactions.SPLITS:
        files = tf.io.gfile.glob(str(out / f"Split-{split}" / "*.gz"))
        dataset = tf.data.TFRecordDataset(files, compression_type="GZIP")
        records[split] = sorted(r.numpy() for r in dataset)
    return records


def test_daily_runs_from_carried_state_write_the_records_of_a_full_read(smoke, tmp_path):
    state_root = str(tmp_path / "state")
    spans = uris.list_spans(smoke)
    plans = []
    for i, day in enumerate(spans[-3:]):
        days = window.select_window(smoke, 7, as_of=day)
        run = beam_examples.plan(str(smoke), days, 1, SAMPLING, 20, state_root=state_root)
        plans.append(run)
        counts = beam_examples.generate(beam.Pipeline(), run, str(tmp_path / f"out{i}"))
    # The first run read every span; each next one the spans after the state the one
    # before handed on (as of its window's first day), carried from carried rows.
    assert plans[0].carried is None and len(plans[0].events) == spans.index(spans[-3]) + 1
    for before, run in zip(plans, plans[1:], strict=False):
        assert run.carried is not None and run.carried.as_of == before.window[0]
        assert [pathlib.Path(e.path).parent.name for e in run.events] == [
            d.isoformat() for d in run.window
        ]
    # Each run left two states (its window's first day, for the next run; its last, for
    # the Trainer's snapshots); the newest four are kept.
    days = sorted({d for run in plans for d in (run.window[0], run.window[-1])})
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == [
        f"as_of={d}" for d in days[-4:]
    ]
    want = _pandas_records(str(smoke), list(plans[-1].window), eval_negatives=20)
    got = _read_records(tmp_path / "out2")
    for split in interactions.SPLITS:
        assert counts[split] == len(want[split]) > 1000
        assert got[split] == want[split], split

    # The Trainer's serving snapshots from the last run's state as of its last day equal
    # those from every span.
    last = plans[-1].window[-1]
    carried = snapshots.DayHistory.read(str(smoke), last, state_root)
    full = snapshots.DayHistory.read(str(smoke), last)
    assert carried.state and not full.state and len(carried.events) < len(full.events) / 2
    for load in (snapshots.load_catalogue, snapshots.load_pair_history):
        pd.testing.assert_frame_equal(load(smoke, last, carried), load(smoke, last, full))
    users = snapshots.load_user_snapshot(smoke, last, carried)
    pd.testing.assert_frame_equal(
        users, snapshots.load_user_snapshot(smoke, last, full), rtol=1e-12
    )
    shares = snapshots.load_user_shares(smoke, last, carried)
    for name, frame in snapshots.load_user_shares(smoke, last, full).items():
        pd.testing.assert_frame_equal(shares[name], frame)
    ids = snapshots.load_catalogue(smoke, last, full)[c.LEAD_ID].to_numpy()
    np.testing.assert_array_equal(
        snapshot_tables.popularity(carried.events, ids),
        snapshot_tables.popularity(full.events, ids),
    )


def test_a_changed_span_makes_the_run_read_every_span(smoke, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(smoke, data)
    state_root = str(tmp_path / "state")
    spans = uris.list_spans(data)
    first = window.select_window(data, 7, as_of=spans[-2])
    beam_examples.generate(
        beam.Pipeline(),
        beam_examples.plan(str(data), first, 1, SAMPLING, state_root=state_root),
        str(tmp_path / "first"),
    )
    today = window.select_window(data, 7)
    assert beam_examples.plan(str(data), today, 1, SAMPLING, state_root=state_root).carried
    # A backfill rewrites an old span: the state no longer stands for it.
    old = data / "spans" / spans[0].isoformat() / "events.csv"
    old.write_text(old.read_text())
    run = beam_examples.plan(str(data), today, 1, SAMPLING, state_root=state_root)
    assert run.carried is None and len(run.events) == len(spans)


def test_an_event_outside_its_span_day_leaves_no_state(tmp_path):
    data = tmp_path / "data"
    shutil.copytree(TINY, data)
    events = data / "spans" / "2026-01-01" / "events.csv"
    events.write_text(events.read_text().replace("2026-01-01T09:05:00Z", "2026-01-02T09:05:00Z"))
    state_root = tmp_path / "state"
    days = window.select_window(data, 3)
    run = beam_examples.plan(str(data), days, 1, SAMPLING, state_root=str(state_root))
    beam_examples.generate(beam.Pipeline(), run, str(tmp_path / "out"))
    # A state folds whole span files up to its day: an event of another day in one would
    # be lost, so none is written (and the examples are those of a full read).
    assert not list(state_root.glob("as_of=*")) and not list(state_root.glob("staging-*"))
    got = _read_records(tmp_path / "out")
    assert got == _pandas_records(str(data), days, eval_negatives=0)
