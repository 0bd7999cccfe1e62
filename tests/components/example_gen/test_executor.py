"""The ExampleGen executor on the tiny data set: TFRecord splits, artifact properties, and
contract violations that stop the run."""

from __future__ import annotations

import pathlib
import re
import shutil

import pytest
import tensorflow as tf
from tfx.types import standard_artifact_utils, standard_artifacts

from aiqleads.errors import DataError
from components import executor_io
from components.example_gen import beam_examples, component, executor, window
from components.example_gen import spec as s
from transforms import features as f

TINY = pathlib.Path(__file__).resolve().parents[2] / "testdata" / "pipeline" / "tiny"


def _read(path: str) -> list[tf.train.Example]:
    dataset = tf.data.TFRecordDataset([path], compression_type="GZIP")
    return [tf.train.Example.FromString(r.numpy()) for r in dataset]


def _props(**overrides) -> dict:
    props = {
        s.DATA_ROOT_KEY: str(TINY),
        s.WINDOW_SPANS_KEY: 4,
        s.EVAL_DAYS_KEY: 1,
        s.AS_OF_KEY: "",
        s.NEGATIVES_KEY: 2,
        s.HARD_FRACTION_KEY: 0.5,
        s.POPULARITY_EXPONENT_KEY: 1.0,
        s.SEED_KEY: 1,
        s.FINGERPRINT_KEY: "x",
    }
    props.update(overrides)
    return props


def test_do_writes_gzipped_splits_and_sets_span(tmp_path):
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "examples")
    executor.Executor().Do({}, {s.EXAMPLES_KEY: [examples]}, _props())

    assert standard_artifact_utils.decode_split_names(examples.split_names) == ["train", "eval"]
    assert examples.span == 20260104
    assert examples.get_string_custom_property(s.WINDOW_FIRST_PROPERTY) == "2026-01-01"
    eval_records = _read(
        str(tmp_path / "examples" / "Split-eval" / "data_tfrecord-00000-of-00001.gz")
    )
    train_records = _read(
        str(tmp_path / "examples" / "Split-train" / "data_tfrecord-00000-of-00001.gz")
    )
    assert examples.get_int_custom_property("num_examples_eval") == len(eval_records)
    labels = [r.features.feature[f.ENGAGEMENT].int64_list.value[0] for r in train_records]
    assert sorted(x for x in labels if x > 0) == [1, 1, 1, 1, 1, 2, 2, 3, 4]  # 9 train positives
    # The U3 first view has no user history: user features are absent, not zero-filled.
    first_view = [
        r
        for r in train_records
        if r.features.feature[f.USER_ID].bytes_list.value == [b"U3"]
        and r.features.feature[f.ENGAGEMENT].int64_list.value == [1]
    ][0]
    assert f.USER_LATITUDE not in first_view.features.feature
    assert first_view.features.feature[f.USER_VIEWS].int64_list.value == [0]
    assert first_view.features.feature[f.PRICE].float_list.value == [500_000.0]


def test_contract_violation_fails_with_file_and_line(tmp_path):
    root = tmp_path / "data"
    shutil.copytree(TINY, root)
    events = root / "spans" / "2026-01-03" / "events.csv"
    events.write_text(events.read_text().replace("purchase", "teleport"))
    out = standard_artifacts.Examples()
    out.uri = str(tmp_path / "examples")
    result = executor.Executor().Do(
        {}, {s.EXAMPLES_KEY: [out]}, _props(**{s.DATA_ROOT_KEY: str(root)})
    )
    assert result.execution_result.code == executor_io.FAILED_PRECONDITION
    assert re.search(
        r"contract violation: .*2026-01-03/events.csv.*line 3.*event_type",
        result.execution_result.result_message,
    )
    with pytest.raises(DataError, match="teleport"):
        window.validate_window(root, window.select_window(root, 4))
    assert not (tmp_path / "examples" / "Split-train").exists()
    # The bad row is in the quarantine output, with its line and reason.
    (record,) = beam_examples.read_quarantine(str(tmp_path / "examples"))
    assert record["file"].endswith("2026-01-03/events.csv") and record["bad_rows"] == 1
    assert record["rows"][0]["event_type"] == "teleport" and record["rows"][0]["line"] == 3
    # Outside the window the bad span is not read.
    assert window.select_window(root, 1) == [window.select_window(root, 4)[-1]]


def test_component_exposes_examples_channel_and_parameters():
    gen = component.InteractionExampleGen(
        data_root=str(TINY), window_spans=3, eval_days=1, input_fingerprint="abc"
    )
    assert gen.outputs[s.EXAMPLES_KEY].type_name == "Examples"
    assert gen.exec_properties[s.FINGERPRINT_KEY] == "abc"
    assert gen.exec_properties[s.NEGATIVES_KEY] == 4
