"""The drift check's statistics on Beam: TFDV's Beam API over the Examples artifact.

One pipeline reads every split's TFRecord files (one element a file, read through
``tf.io.gfile``: ``gs://`` and ``s3://`` work), keeps the positives (engagement > 0), and
computes with ``tfdv.GenerateStatistics``

- the statistics of every compared feature per UTC day (a TFDV slice per day), of which the
  check uses the newest day and the one before it;
- the same of the training split's positives (what serving logs are compared with, and the
  reference the online monitor reads);
- each (day, region)'s median market price and inventory (`drift.regional_levels`).

They are written under ``<out_dir>`` (through ``tf.io.gfile`` too) and read back by `compute`, which returns the
`drift.SpanStatistics` the comparison reads; the comparison itself stays in memory.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Iterable, Iterator
from typing import Any

import apache_beam as beam
import numpy as np
import pandas as pd
import pyarrow as pa
import tensorflow as tf
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import schema_pb2, statistics_pb2

from components.drift_check import drift
from transforms import features as f

DAY_COLUMN = "__day"  # the slice key column, dropped from every slice's batches
DAY_SECONDS = 86_400
DAYS_FILE = "statistics_by_day.pb"
TRAINING_FILE = "statistics_training.pb"
LEVELS_FILE = "regional_levels.jsonl"
BATCH_SIZE = 2_000
_LEVEL_COLUMNS = (f.MARKET_MEDIAN_PRICE, f.MARKET_INVENTORY)


def _value(feature: tf.train.Feature) -> Any:
    kind = feature.WhichOneof("kind")
    values = getattr(feature, kind).value if kind else []
    return values[0] if values else None


def parse_positive(record: bytes, names: tuple[str, ...]) -> dict[str, Any] | None:
    """The compared features (and the day, region and market level) of a positive example;
    None for a sampled negative."""
    feature = tf.train.Example.FromString(record).features.feature
    engagement = _value(feature[f.ENGAGEMENT]) if f.ENGAGEMENT in feature else None
    if not engagement or engagement <= 0:
        return None
    row = {name: _value(feature[name]) for name in names if name in feature}
    for name in (f.REGION, *_LEVEL_COLUMNS):
        if name in feature:
            row[name] = _value(feature[name])
    row[DAY_COLUMN] = int(_value(feature[f.EVENT_TIMESTAMP])) // DAY_SECONDS
    return row


def to_record_batch(rows: list[dict[str, Any]], names: tuple[str, ...]) -> pa.RecordBatch:
    """Rows -> a TFDV record batch of ``names`` (missing values as nulls) and the day."""
    arrays = [drift._list_array(pd.Series([r.get(n) for r in rows], dtype=object)) for n in names]
    days = pa.array([[str(r[DAY_COLUMN]).encode()] for r in rows])
    return pa.RecordBatch.from_arrays([*arrays, days], [*names, DAY_COLUMN])


def slice_by_day(batch: pa.RecordBatch) -> Iterator[tuple[str, pa.RecordBatch]]:
    """TFDV slice function: one slice per day (``str`` of the day number since the epoch),
    without the day column."""
    index = batch.schema.get_field_index(DAY_COLUMN)
    days = np.array([v[0].decode() for v in batch.column(index).to_pylist()])
    keep = [i for i in range(batch.num_columns) if i != index]
    for day in np.unique(days):
        rows = batch.take(pa.array(np.flatnonzero(days == day)))
        columns = [rows.column(i) for i in keep]
        yield str(day), pa.RecordBatch.from_arrays(columns, [batch.schema.names[i] for i in keep])


def _without_day(batch: pa.RecordBatch) -> pa.RecordBatch:
    index = batch.schema.get_field_index(DAY_COLUMN)
    keep = [i for i in range(batch.num_columns) if i != index]
    return pa.RecordBatch.from_arrays(
        [batch.column(i) for i in keep], [batch.schema.names[i] for i in keep]
    )


def _level_row(row: dict[str, Any]) -> Iterator[tuple[tuple[int, str], tuple[float, float]]]:
    region = row.get(f.REGION)
    price, inventory = row.get(f.MARKET_MEDIAN_PRICE), row.get(f.MARKET_INVENTORY)
    if region is None or price is None or inventory is None:
        return
    if price > 0 and inventory > 0:
        name = region.decode() if isinstance(region, bytes) else str(region)
        yield (row[DAY_COLUMN], name), (float(price), float(inventory))


def _median_levels(
    element: tuple[tuple[int, str], Iterable[tuple[float, float]]],
) -> str:
    (day, region), values = element
    pairs = np.array(list(values), dtype=float)
    price, inventory = np.median(pairs[:, 0]), np.median(pairs[:, 1])
    return json.dumps({"day": day, "region": region, "price": price, "inventory": inventory})


def read_records(path: str) -> Iterator[bytes]:
    """The records of one gzipped TFRecord file."""
    dataset = tf.data.TFRecordDataset([path], compression_type="GZIP").batch(512)
    for batch in dataset.as_numpy_iterator():
        yield from batch


def write_proto(stats: statistics_pb2.DatasetFeatureStatisticsList, path: str) -> None:
    tf.io.gfile.makedirs(path.rsplit("/", 1)[0])
    with tf.io.gfile.GFile(path, "wb") as handle:
        handle.write(stats.SerializeToString())


def write_lines(lines: list[str], path: str) -> None:
    tf.io.gfile.makedirs(path.rsplit("/", 1)[0])
    with tf.io.gfile.GFile(path, "w") as handle:
        handle.write("".join(line + "\n" for line in sorted(lines)))


def _stats_options(schema: schema_pb2.Schema, sliced: bool) -> tfdv.StatsOptions:
    return tfdv.StatsOptions(
        schema=schema,
        num_histogram_buckets=20,
        experimental_slice_functions=[slice_by_day] if sliced else None,
    )


@dataclasses.dataclass(frozen=True)
class StatsJob:
    """What to compute: the Examples artifact's splits (the training one apart), the
    compared features, the schema with their comparators, and where the outputs go."""

    examples_uri: str
    splits: tuple[str, ...]
    training_split: str
    names: tuple[str, ...]
    schema: schema_pb2.Schema
    out_dir: str


def build(pipeline: beam.Pipeline, job: StatsJob) -> None:
    """Add the steps that write the statistics and levels under ``job.out_dir``."""
    names, schema, out_dir = job.names, job.schema, job.out_dir
    by_split = {}
    for split in job.splits:
        files = sorted(tf.io.gfile.glob(f"{job.examples_uri.rstrip('/')}/Split-{split}/*"))
        by_split[split] = (
            pipeline
            | f"Files{split}" >> beam.Create(files)
            | f"Read{split}" >> beam.FlatMap(read_records)
            | f"Positives{split}" >> beam.Map(parse_positive, names)
            | f"Drop{split}" >> beam.Filter(lambda row: row is not None)
        )
    rows = tuple(by_split.values()) | "AllPositives" >> beam.Flatten()
    batches = (
        rows
        | "Batch" >> beam.BatchElements(min_batch_size=BATCH_SIZE, max_batch_size=BATCH_SIZE)
        | "ToRecordBatch" >> beam.Map(to_record_batch, names)
    )
    _ = (
        batches
        | "StatsByDay" >> tfdv.GenerateStatistics(_stats_options(schema, sliced=True))
        | "WriteByDay" >> beam.Map(write_proto, f"{out_dir}/{DAYS_FILE}")
    )
    if job.training_split in by_split:
        _ = (
            by_split[job.training_split]
            | "BatchTraining"
            >> beam.BatchElements(min_batch_size=BATCH_SIZE, max_batch_size=BATCH_SIZE)
            | "TrainingBatch" >> beam.Map(to_record_batch, names)
            | "TrainingColumns" >> beam.Map(_without_day)
            | "StatsTraining" >> tfdv.GenerateStatistics(_stats_options(schema, sliced=False))
            | "WriteTraining" >> beam.Map(write_proto, f"{out_dir}/{TRAINING_FILE}")
        )
    _ = (
        rows
        | "LevelRows" >> beam.FlatMap(_level_row)
        | "ByDayRegion" >> beam.GroupByKey()
        | "Median" >> beam.Map(_median_levels)
        | "AllLevels" >> beam.combiners.ToList()
        | "WriteLevels" >> beam.Map(write_lines, f"{out_dir}/{LEVELS_FILE}")
    )


def _levels(out_dir: str, day: int | None) -> pd.DataFrame:
    with tf.io.gfile.GFile(f"{out_dir}/{LEVELS_FILE}", "r") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    picked = [r for r in rows if r["day"] == day]
    if not picked:
        return pd.DataFrame(columns=list(_LEVEL_COLUMNS))
    frame = pd.DataFrame(picked).set_index("region")
    frame = frame.rename(columns={"price": f.MARKET_MEDIAN_PRICE, "inventory": f.MARKET_INVENTORY})
    frame.index.name = None
    return frame[list(_LEVEL_COLUMNS)].sort_index()


def _load(path: str) -> statistics_pb2.DatasetFeatureStatisticsList:
    with tf.io.gfile.GFile(path, "rb") as handle:
        return statistics_pb2.DatasetFeatureStatisticsList.FromString(handle.read())


def _single(stats: statistics_pb2.DatasetFeatureStatisticsList) -> drift.Stats:
    out = statistics_pb2.DatasetFeatureStatisticsList()
    out.datasets.add().CopyFrom(stats.datasets[0])
    out.datasets[0].name = ""
    return out


def compute(
    pipeline: beam.Pipeline, job: StatsJob
) -> tuple[drift.SpanStatistics, dt.date, dt.date | None]:
    """Run the statistics on ``pipeline`` (not yet run); return them with the newest day
    holding positives and the day before it that does (None when there is none)."""
    build(pipeline, job)
    pipeline.run().wait_until_finish()
    out_dir, examples_uri = job.out_dir, job.examples_uri
    if not tf.io.gfile.exists(f"{out_dir}/{DAYS_FILE}"):
        raise ValueError(f"no examples under {examples_uri}")
    by_day = _load(f"{out_dir}/{DAYS_FILE}")
    days = sorted(int(d.name) for d in by_day.datasets if d.name.lstrip("-").isdigit())
    if not days:
        raise ValueError(f"no positive examples (engagement > 0) under {examples_uri}")
    newest, previous = days[-1], (days[-2] if len(days) > 1 else None)
    training = None
    if tf.io.gfile.exists(f"{out_dir}/{TRAINING_FILE}"):
        training = _single(_load(f"{out_dir}/{TRAINING_FILE}"))
        if not training.datasets[0].num_examples:
            training = None
    spans = drift.SpanStatistics(
        current=_single(tfdv.get_slice_stats(by_day, str(newest))),
        previous=None if previous is None else _single(tfdv.get_slice_stats(by_day, str(previous))),
        training=training,
        levels_now=_levels(out_dir, newest),
        levels_then=_levels(out_dir, previous),
    )
    epoch = dt.date(1970, 1, 1)
    return (
        spans,
        epoch + dt.timedelta(days=newest),
        None if previous is None else epoch + dt.timedelta(days=previous),
    )
