"""ExampleGen as a Beam pipeline: the same examples as `interactions.build_examples`, built by
any Beam runner (DirectRunner here; Dataflow, Flink or Spark with their ``beam_args``).

The steps (docs/pipeline.md, "ExampleGen on Beam"):

1. Each table file is one element. A worker reads it through ``tf.io.gfile`` (so a ``gs://``
   or ``s3://`` data root reads like a local one) and checks the window's files against
   their contracts; violations, and window events whose lead is not in leads.csv, go to the
   quarantine output instead of the examples.
2. Events and users are keyed by a stable hash of the user (CRC-32, the same in every
   process) into ``shards`` groups, so each group holds *every* event of its users: the
   as-of joins of a user need the user's whole history and nothing of the other users.
3. The leads, the market rows (region x day) and the window's event counts per lead (the
   popularity the sampler weighs by) are side inputs: small, and the same for every group.
4. Per group, `interactions.examples_for` labels, samples negatives (keyed by seed, user,
   time and lead, so any grouping gives the same draws), joins the features as of each
   example and splits by time; the rows are encoded as tf.Examples and written by Beam's
   TFRecord sink, one folder per split.

The set of records equals the pandas run's (a test compares them byte for byte); the order
of records within and across the output files is the runner's.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import json
import logging
from collections.abc import Iterable, Iterator
from typing import Any

import apache_beam as beam
import numpy as np
import pandas as pd
import tensorflow as tf
from apache_beam.metrics.metric import MetricsFilter

from aiqleads import contracts as c
from aiqleads.data import io, validate
from aiqleads.data.uris import join as uri
from aiqleads.data.uris import list_spans, table_uri
from aiqleads.errors import DataError
from aiqleads.features import sources
from components.example_gen import (
    history_state,
    interactions,
    offline_store,
    raw_tables,
    tf_examples,
)

log = logging.getLogger(__name__)

METRICS_NAMESPACE = "aiqleads_example_gen"
QUARANTINE_DIR = "Quarantine"  # beside the Split-* folders of the Examples artifact
QUARANTINE_PREFIX = "violations"
RECORD_PREFIX = "data_tfrecord"
SHARD_TARGET_BYTES = 8 << 20  # event CSV bytes per user group (about 100k events)
MIN_SHARDS, MAX_SHARDS = 4, 4096
_QUARANTINE = "quarantine"
_POPULARITY = "popularity"
_UNKNOWN_LEADS = "unknown_leads"
_STATE = "state-{}"
OUTSIDE_DAY = "events_outside_their_day"  # a state folds spans by day: it needs none


@dataclasses.dataclass(frozen=True)
class TableFile:
    """One file the pipeline reads: its place in the order files are checked (the first
    violation in that order is the one the run fails with), its contract, and whether it
    is checked (the window's files) or history read as it is."""

    order: int
    path: str
    contract_name: str
    check: bool
    day_end: int = 0  # an events file: the end of its span's day (second)

    @property
    def contract(self) -> c.Contract:
        return next(x for x in c.ALL_CONTRACTS if x.name == self.contract_name)


@dataclasses.dataclass(frozen=True)
class Plan:
    """What a run reads and how it groups users."""

    data_root: str
    window: tuple[dt.date, ...]
    spec: interactions.ExampleSpec
    leads: TableFile
    users: TableFile
    events: tuple[TableFile, ...]
    market: tuple[TableFile, ...]
    shards: int
    state_root: str = ""  # "" : no state is read or written
    carried: history_state.State | None = None  # the state read instead of older spans
    carried_files: tuple[str, ...] = ()
    # The states this run writes: (the day each is as of, the folder it is staged in). As
    # of the window's first day (the next day's window starts after it) and its last (the
    # Trainer's serving snapshots).
    hand_on: tuple[tuple[dt.date, str], ...] = ()


def plan(
    data_root: str,
    window: list[dt.date],
    eval_days: int,
    sampling: interactions.SamplingConfig,
    eval_negatives: int = 0,
    state_root: str = "",
) -> Plan:
    """The files of a run (every span up to the window's end, or with a usable state under
    ``state_root`` the spans after it; the window's are checked) and the number of user
    groups, from the event files' size."""
    interactions.check_window(window, eval_days, data_root)
    last_day = window[-1]
    spec = interactions.ExampleSpec(
        last_day, interactions.window_start_seconds(window), eval_days, sampling, eval_negatives
    )
    carried = history_state.latest(state_root, data_root, window[0]) if state_root else None
    after = carried.as_of if carried is not None else dt.date.min
    days = [d for d in list_spans(data_root) if after < d <= last_day]
    in_window = set(window)
    order = itertools.count()
    leads = TableFile(next(order), table_uri(data_root, c.LEADS), c.LEADS.name, True)
    users = TableFile(next(order), table_uri(data_root, c.USERS), c.USERS.name, True)
    events, market = [], []
    for day in days:
        checked = day in in_window
        path = table_uri(data_root, c.EVENTS, day)
        end = raw_tables.day_end_seconds(day)
        events.append(TableFile(next(order), path, c.EVENTS.name, checked, day_end=end))
        market.append(
            TableFile(next(order), table_uri(data_root, c.MARKET, day), c.MARKET.name, checked)
        )
    # Every file, the history's too: a missing one fails here, not inside a worker.
    for table in (leads, users, *events, *market):
        if not tf.io.gfile.exists(table.path):
            raise DataError(
                f"missing file {table.path}: every span needs events.csv and market.csv"
            )
    carried_files = tuple(sorted(tf.io.gfile.glob(carried.rows_pattern))) if carried else ()
    size = sum(
        tf.io.gfile.stat(path).length for path in [e.path for e in events] + list(carried_files)
    )
    shards = int(np.clip(size // SHARD_TARGET_BYTES + 1, MIN_SHARDS, MAX_SHARDS))
    return Plan(
        data_root,
        tuple(window),
        spec,
        leads,
        users,
        tuple(events),
        tuple(market),
        shards,
        state_root=state_root,
        carried=carried,
        carried_files=carried_files,
        hand_on=tuple(
            (day, history_state.staging_path(state_root))
            for day in (sorted({window[0], window[-1]}) if state_root else ())
        ),
    )


def shard_of(user_ids: Iterable[object], shards: int) -> np.ndarray:
    """Each user's group: CRC-32 of the id modulo ``shards`` (stable across processes)."""
    ids = np.asarray(list(user_ids), dtype=object)
    return (interactions.stable_ids(ids) % np.uint64(shards)).astype(np.int64)


def _read_text(table: TableFile) -> pd.DataFrame:
    if not tf.io.gfile.exists(table.path):
        raise DataError(f"missing {table.contract_name} file {table.path}")
    with tf.io.gfile.GFile(table.path, "r") as handle:
        return io.read_text_csv(handle, table.path)


def _quarantine(table: TableFile, message: str, bad: pd.DataFrame) -> dict[str, Any]:
    return {
        "order": table.order,
        "file": table.path,
        "message": message,
        "bad_rows": int(len(bad)),
        "rows": json.loads(bad.head(1000).to_json(orient="records")),
    }


def _checked(table: TableFile) -> pd.DataFrame | dict[str, Any]:
    """The typed frame of ``table``, or for a checked file with contract violations its
    quarantine record: the run then fails, and nothing of the file is used."""
    text = _read_text(table)
    contract = table.contract
    if table.check:
        report = validate.validate_frame(text, contract, source=table.path)
        try:
            validate.raise_for_violations(report)
        except DataError as e:
            return _quarantine(table, str(e), report.bad)
    return sources.typed_table(text, contract, table.path)


def read_table(table: TableFile) -> Iterator[Any]:
    """The typed frame of ``table``, or its quarantine record (tagged)."""
    out = _checked(table)
    if isinstance(out, dict):
        yield beam.pvalue.TaggedOutput(_QUARANTINE, out)
    else:
        yield out


class ShardEvents(beam.DoFn):  # type: ignore[misc]
    """An event file -> (group, that group's events); for a window file also its event
    count per lead (tagged ``popularity``) and quarantine records for contract violations
    or events that name a lead missing from leads.csv."""

    def __init__(self, shards: int, window_start: int) -> None:
        self._shards = shards
        self._window_start = window_start
        self._outside = beam.metrics.Metrics.counter(METRICS_NAMESPACE, OUTSIDE_DAY)

    def process(self, table: TableFile, leads: pd.DataFrame | None) -> Iterator[Any]:
        frame = _checked(table)
        if isinstance(frame, dict):
            yield beam.pvalue.TaggedOutput(_QUARANTINE, frame)
        else:
            yield from self._shard(table, frame, _or_empty_leads(leads))

    def _shard(self, table: TableFile, frame: pd.DataFrame, leads: pd.DataFrame) -> Iterator[Any]:
        if table.day_end:
            ts = frame[interactions.TS].to_numpy()
            day_start = table.day_end - raw_tables.DAY_SECONDS
            self._outside.inc(int(((ts < day_start) | (ts >= table.day_end)).sum()))
        in_window = frame[frame[interactions.TS] >= self._window_start]
        if not in_window.empty:
            unknown = set(in_window[c.LEAD_ID]) - set(leads[c.LEAD_ID])
            if unknown:
                bad = in_window[in_window[c.LEAD_ID].isin(unknown)].drop(columns=[interactions.TS])
                message = interactions.unknown_leads_message(unknown)
                record = _quarantine(table, message, bad.astype(str))
                record[_UNKNOWN_LEADS] = sorted(unknown)[:5]  # the union's first 5 are in these
                # After every contract violation: the pandas run checks leads after contracts.
                record["order"] = 1_000_000 + table.order
                yield beam.pvalue.TaggedOutput(_QUARANTINE, record)
            yield beam.pvalue.TaggedOutput(_POPULARITY, in_window.groupby(c.LEAD_ID).size())
        yield from shard_users(frame, self._shards)


def shard_users(frame: pd.DataFrame, shards: int) -> Iterator[tuple[int, pd.DataFrame]]:
    """A table keyed by user (users, carried rows) -> (group, that group's rows)."""
    if frame.empty:
        return
    groups = shard_of(frame[c.USER_ID], shards)
    for shard in np.unique(groups):
        yield int(shard), frame[groups == shard]


def _or_empty_leads(leads: pd.DataFrame | None) -> pd.DataFrame:
    if leads is None:
        return sources.empty_table(c.LEADS)
    return leads


def add_counts(counts: Iterable[pd.Series]) -> pd.Series:
    """The sum of per-file event counts per lead."""
    parts = [s for s in counts if len(s)]
    if not parts:
        return pd.Series(dtype=np.int64)
    return pd.concat(parts).groupby(level=0).sum()


def concat_frames(frames: Iterable[pd.DataFrame]) -> pd.DataFrame:
    parts = list(frames)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


class GroupExamples(beam.DoFn):  # type: ignore[misc]
    """One group's events, carried rows and users -> serialized tf.Examples, tagged with
    their split, and for each second of ``cuts`` the group's carried rows up to it: its
    history before that second, folded (tagged ``state-<i>``)."""

    def __init__(self, spec: interactions.ExampleSpec, cuts: tuple[int, ...] = ()) -> None:
        self._spec = spec
        self._cuts = cuts
        self._counters = {
            split: beam.metrics.Metrics.counter(METRICS_NAMESPACE, f"examples_{split}")
            for split in interactions.SPLITS
        }

    def process(
        self,
        element: tuple[int, dict[str, list[pd.DataFrame]]],
        leads: pd.DataFrame | None,
        market: pd.DataFrame,
        popularity: pd.Series,
    ) -> Iterator[Any]:
        # A generator without `return` (Beam warns about a process method that has both).
        yield from self._examples(element[1], _or_empty_leads(leads), market, popularity)

    def _examples(
        self,
        parts: dict[str, list[pd.DataFrame]],
        leads: pd.DataFrame,
        market: pd.DataFrame,
        popularity: pd.Series,
    ) -> Iterator[Any]:
        frames = [*parts["events"], *parts.get("carried", [])]
        if not frames:
            return
        # The frames come in the runner's order: sorted, a group's rows are the same on any.
        history = pd.concat(frames, ignore_index=True)
        history = history.sort_values([interactions.TS, c.EVENT_ID], kind="stable")
        history = history.reset_index(drop=True)
        for i, cut in enumerate(self._cuts):
            block = history_state.encode_rows(history_state.fold(history, cut))
            if block:  # one element per group: its carried rows' lines
                yield beam.pvalue.TaggedOutput(_STATE.format(i), block)
        if not (history[interactions.TS] >= self._spec.window_start).any():
            return  # carried users with no event in the window: no examples
        users = (
            pd.concat(parts["users"], ignore_index=True)
            if parts["users"]
            else sources.empty_table(c.USERS)
        )
        tables = offline_store.OfflineTables(leads, users, history, market)
        examples = interactions.examples_for(history, tables, popularity, self._spec)
        for split in interactions.SPLITS:
            part = examples[examples[interactions.SPLIT] == split]
            records = tf_examples.encode(part)
            self._counters[split].inc(len(records))
            for record in records:
                yield beam.pvalue.TaggedOutput(split, record)


def build(pipeline: beam.Pipeline, run: Plan, output_uri: str) -> None:
    """Add the steps that write ``run``'s examples under ``output_uri`` to ``pipeline``."""
    spec = run.spec
    leads_read = (
        pipeline
        | "LeadsFile" >> beam.Create([run.leads])
        | "ReadLeads" >> beam.FlatMap(read_table).with_outputs(_QUARANTINE, main="table")
    )
    # None when leads.csv is quarantined (the run fails; the other steps still finish).
    leads = beam.pvalue.AsSingleton(leads_read.table, default_value=None)
    users_read = (
        pipeline
        | "UsersFile" >> beam.Create([run.users])
        | "ReadUsers" >> beam.FlatMap(read_table).with_outputs(_QUARANTINE, main="table")
    )
    market_read = (
        pipeline
        | "MarketFiles" >> beam.Create(list(run.market))
        | "ReadMarket" >> beam.FlatMap(read_table).with_outputs(_QUARANTINE, main="table")
    )
    market_tables = [market_read.table]
    if run.carried is not None:
        market_tables.append(
            pipeline
            | "CarriedMarketFile" >> beam.Create([run.carried])
            | "ReadCarriedMarket" >> beam.Map(history_state.read_market)
        )
    market_frame = (
        market_tables
        | "MarketTables" >> beam.Flatten()
        | "MarketAll" >> beam.combiners.ToList()
        | "MarketFrame" >> beam.Map(concat_frames)
    )
    market = beam.pvalue.AsSingleton(market_frame)
    sharded = (
        pipeline
        | "EventFiles" >> beam.Create(list(run.events))
        | "ReadAndShard"
        >> beam.ParDo(ShardEvents(run.shards, spec.window_start), leads).with_outputs(
            _QUARANTINE, _POPULARITY, main="events"
        )
    )
    popularity = beam.pvalue.AsSingleton(
        sharded[_POPULARITY] | "Popularity" >> beam.CombineGlobally(add_counts)
    )
    users = users_read.table | "ShardUsers" >> beam.FlatMap(shard_users, run.shards)
    keyed = {"events": sharded.events, "users": users}
    if run.carried_files:
        keyed["carried"] = (
            pipeline
            | "CarriedFiles" >> beam.Create(list(run.carried_files))
            | "ReadCarried" >> beam.Map(history_state.read_rows)
            | "ShardCarried" >> beam.FlatMap(shard_users, run.shards)
        )
    grouped = keyed | "ByUserGroup" >> beam.CoGroupByKey()
    cuts = tuple(raw_tables.day_end_seconds(day) for day, _ in run.hand_on)
    states = [_STATE.format(i) for i in range(len(cuts))]
    splits = grouped | "Examples" >> beam.ParDo(
        GroupExamples(spec, cuts), leads, market, popularity
    ).with_outputs(*states, *interactions.SPLITS)
    for tag, (day, staging) in zip(states, run.hand_on, strict=True):
        _ = splits[tag] | f"Write-{tag}" >> beam.io.WriteToText(
            uri(staging, history_state.ROWS_DIR, history_state.ROWS_PREFIX),
            file_name_suffix=history_state.ROWS_SUFFIX,
        )
        _ = (
            market_frame
            | f"Market-{tag}" >> beam.Map(history_state.carried_market, day)
            | f"MarketJson-{tag}" >> beam.Map(history_state.encode_market)
            | f"WriteMarket-{tag}"
            >> beam.io.WriteToText(
                uri(staging, history_state.MARKET_PREFIX),
                file_name_suffix=history_state.MARKET_SUFFIX,
                shard_name_template="",
            )
        )
    for split in interactions.SPLITS:
        _ = splits[split] | f"Write{split}" >> beam.io.WriteToTFRecord(
            uri(output_uri, f"Split-{split}", RECORD_PREFIX),
            file_name_suffix=".gz",
            compression_type=beam.io.filesystem.CompressionTypes.GZIP,
        )
    quarantined = (
        leads_read[_QUARANTINE],
        users_read[_QUARANTINE],
        market_read[_QUARANTINE],
        sharded[_QUARANTINE],
    )
    _ = (
        quarantined
        | "Quarantine" >> beam.Flatten()
        | "QuarantineJson" >> beam.Map(lambda record: json.dumps(record, sort_keys=True))
        | "WriteQuarantine"
        >> beam.io.WriteToText(
            uri(output_uri, QUARANTINE_DIR, QUARANTINE_PREFIX), file_name_suffix=".jsonl"
        )
    )


def read_quarantine(output_uri: str) -> list[dict[str, Any]]:
    """The quarantine records a run wrote, in the order the files are checked."""
    records = []
    for path in sorted(tf.io.gfile.glob(uri(output_uri, QUARANTINE_DIR, "*"))):
        with tf.io.gfile.GFile(path, "r") as handle:
            records += [json.loads(line) for line in handle if line.strip()]
    return sorted(records, key=lambda r: (r["order"], r["file"]))


def failure_message(records: list[dict[str, Any]]) -> str:
    """The error the pandas run raises for the same data: the first file's violations, or
    the leads missing from leads.csv (the first five of every file's, sorted)."""
    first = records[0]
    if _UNKNOWN_LEADS not in first:
        return str(first["message"])
    unknown = {lead for r in records if _UNKNOWN_LEADS in r for lead in r[_UNKNOWN_LEADS]}
    return interactions.unknown_leads_message(unknown)


def _counter(result: beam.runners.runner.PipelineResult, name: str) -> int:
    query = result.metrics().query(
        MetricsFilter().with_namespace(METRICS_NAMESPACE).with_name(name)
    )
    total = 0
    for counter in query["counters"]:
        value = counter.committed if counter.committed is not None else counter.attempted
        total += int(value or 0)
    return total


def generate(
    pipeline: beam.Pipeline,
    run: Plan,
    output_uri: str,
) -> dict[str, int]:
    """Run ``run`` on ``pipeline`` (not yet run) and return the example count per split;
    raise ``DataError`` with the pandas run's message when a file is quarantined."""
    build(pipeline, run, output_uri)
    try:
        result = pipeline.run()
        result.wait_until_finish()
    except BaseException:
        for _, staging in run.hand_on:
            history_state.discard(staging)
        raise
    quarantined = read_quarantine(output_uri)
    outside = _counter(result, OUTSIDE_DAY) if run.hand_on else 0
    if outside:
        log.warning(
            "%d events lie outside their span file's day: no history state is written, and "
            "the next run reads every span",
            outside,
        )
    for day, staging in run.hand_on:
        if quarantined or outside:
            history_state.discard(staging)
        else:
            history_state.commit(run.state_root, staging, run.data_root, day)
    if quarantined:
        # No examples of a failed run stay behind; the quarantine output does.
        for split in interactions.SPLITS:
            split_dir = uri(output_uri, f"Split-{split}")
            if tf.io.gfile.exists(split_dir):
                tf.io.gfile.rmtree(split_dir)
        raise DataError(failure_message(quarantined))
    return {split: _counter(result, f"examples_{split}") for split in interactions.SPLITS}
