"""The Trainer's entry point: `run_fn(fn_args)` (module path, no module file).

Reads Transform's gzipped TFRecords, trains `model.Recommender` for ``fn_args.train_steps``
steps, and exports the SavedModel with `serving_default` and `recommend` to
``fn_args.serving_model_dir``. ``custom_config`` must hold ``data_root`` and ``as_of`` (the
serving snapshots' day) and may override `model.ModelConfig` fields. ``sampling`` (ExampleGen's
``negatives_per_positive``, ``hard_fraction``, ``popularity_exponent`` and ``window_spans``)
says how the negatives were drawn, for `recommend`'s sampling-bias correction
(`sampling_prior.py`); ExampleGen's defaults and every span up to ``as_of`` when absent.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import os
from typing import Any

import tensorflow as tf
import tensorflow_transform as tft

from aiqleads import settings_io
from aiqleads.data import uris
from aiqleads.errors import DataError
from components.example_gen import raw_tables, snapshots, window
from components.example_gen.interactions import SamplingConfig
from components.trainer import model as model_lib
from components.trainer.export import export
from components.trainer.sampling_prior import SamplingPrior
from components.trainer.signatures import RecommenderExport
from components.trainer.snapshot_tables import popularity
from transforms import features as f

DATA_ROOT = "data_root"
AS_OF = "as_of"
SAMPLING = "sampling"
WINDOW_SPANS = "window_spans"
# Where ExampleGen leaves the history state as of the window's last day: the snapshots read
# it instead of every span when it is there and usable ("" or absent: every span).
HISTORY_STATE_ROOT = "history_state_root"
MAX_EPOCHS = 10  # progress lines: training steps are split over at most this many epochs
SUMMARY_FILE = "training_summary.json"

log = logging.getLogger(__name__)


class TrainerConfigError(ValueError):
    """``custom_config`` lacks or mangles what the Trainer needs."""


def _files(patterns: list[str] | str) -> list[str]:
    patterns = [patterns] if isinstance(patterns, str) else list(patterns)
    files: list[str] = []
    for pattern in patterns:
        if tf.io.gfile.isdir(pattern):
            pattern = os.path.join(pattern, "*")
        files.extend(sorted(tf.io.gfile.glob(pattern)))
    if not files:
        raise FileNotFoundError(f"no transformed examples match {patterns}")
    return files


def input_fn(
    patterns: list[str] | str,
    tft_output: Any,
    batch_size: int,
    repeat: bool = True,
    seed: int = 7,
) -> tf.data.Dataset:
    """(features, labels, weights) batches from Transform's gzipped TFRecords."""
    spec = dict(tft_output.transformed_feature_spec())
    ds = tf.data.TFRecordDataset(_files(patterns), compression_type="GZIP")
    if repeat:
        ds = ds.shuffle(10_000, seed=seed, reshuffle_each_iteration=True).repeat()
    ds = ds.batch(batch_size).map(lambda x: tf.io.parse_example(x, spec))

    def split(batch):
        label = batch.pop(f.T_LABEL)[:, None]
        weight = batch.pop(f.T_WEIGHT)
        targets = {model_lib.SCORE: label, model_lib.RETRIEVAL: label}
        weights = {model_lib.SCORE: weight, model_lib.RETRIEVAL: weight}
        return batch, targets, weights

    return ds.map(split).prefetch(2)


def snapshot_day(custom: dict[str, Any]) -> tuple[str, dt.date]:
    """(data_root, as_of) from ``custom_config``, validated.

    ``as_of`` "" (a pipeline whose window is chosen at run time) means the newest span under
    ``data_root`` now, the rule ExampleGen applied at the start of the same run.
    """
    missing = ([DATA_ROOT] if not custom.get(DATA_ROOT) else []) + (
        [AS_OF] if AS_OF not in custom else []
    )
    if missing:
        raise TrainerConfigError(f"custom_config needs {missing} for the serving snapshots")
    root = str(custom[DATA_ROOT])
    if not uris.isdir(root):
        raise TrainerConfigError(f"custom_config data_root={root!r} is not a directory")
    if custom[AS_OF] in ("", None):
        try:
            day = window.select_window(root, 1)[-1]
        except DataError as e:
            raise TrainerConfigError(str(e)) from e
        log.info("trainer: run-time window, serving snapshots as of the newest span %s", day)
        return root, day
    try:
        day = dt.date.fromisoformat(str(custom[AS_OF]))
    except ValueError as e:
        raise TrainerConfigError(f"custom_config as_of={custom[AS_OF]!r} is not YYYY-MM-DD") from e
    return root, day


def sampling_settings(custom: dict[str, Any]) -> tuple[SamplingConfig, int | None]:
    """(ExampleGen's sampling, window spans or None for all) from ``custom_config``."""
    raw = dict(custom.get(SAMPLING) or {})
    spans = raw.pop(WINDOW_SPANS, None)
    try:
        sampling = SamplingConfig.from_settings(raw)
        spans = None if spans is None else settings_io.as_number(spans, 0, WINDOW_SPANS)
    except (ValueError, DataError) as e:
        raise TrainerConfigError(f"custom_config sampling: {e}") from e
    if spans is not None and spans < 1:
        raise TrainerConfigError(f"custom_config sampling window_spans must be >= 1, got {spans}")
    return sampling, spans


def build_export(
    model,
    tft_output,
    data_root: str,
    as_of: dt.date,
    sampling: SamplingConfig | None = None,
    window_spans: int | None = None,
    prior_weight: float = model_lib.ModelConfig.sampling_prior_weight,
    history: snapshots.DayHistory | None = None,
):
    """The export module with the catalogue and users as of ``as_of``, and the prior of how
    ExampleGen drew the negatives over the last ``window_spans`` spans (all when None).

    ``history`` is the history up to ``as_of`` (default: read from every span; `run_fn`
    reads ExampleGen's history state as of that day when there is a usable one, which gives
    the same tables)."""
    if history is None:
        history = snapshots.DayHistory.read(data_root, as_of)
    catalogue = snapshots.load_catalogue(data_root, as_of, history)
    users = snapshots.load_user_snapshot(data_root, as_of, history)
    prior = popularity(history.events, catalogue[f.LEAD_ID].to_numpy())
    pairs = snapshots.load_pair_history(data_root, as_of, history)
    shares = snapshots.load_user_shares(data_root, as_of, history)
    negatives = None
    if prior_weight > 0:
        days = raw_tables.spans_up_to(data_root, as_of)
        window_days = days if window_spans is None else days[-window_spans:]
        start = raw_tables.day_end_seconds(window_days[0]) - raw_tables.DAY_SECONDS
        # The window's events, as ExampleGen took them (a state holds no single events).
        events = raw_tables.read_events(data_root, window_days) if history.state else history.events
        negatives = SamplingPrior.fit(
            events[events[raw_tables.TS_SECONDS] >= start],
            catalogue,
            users,
            sampling or SamplingConfig(),
        )
    return RecommenderExport(
        model,
        tft_output,
        catalogue,
        users,
        prior,
        as_of,
        pairs,
        sampling_prior=negatives,
        prior_weight=prior_weight,
        shares=shares,
    )


def train(fn_args: Any) -> tuple[model_lib.Recommender, Any, dict[str, float]]:
    """Train on ``fn_args``; returns (model, TFTransformOutput, final metrics)."""
    cfg = model_lib.ModelConfig.from_custom_config(fn_args.custom_config)
    tft_output = tft.TFTransformOutput(fn_args.transform_output)
    vocab = model_lib.VocabSizes.from_transform_output(tft_output)
    model = model_lib.build_model(vocab, cfg)
    steps = max(int(fn_args.train_steps or 1), 1)
    epochs = min(MAX_EPOCHS, steps)
    train_ds = input_fn(fn_args.train_files, tft_output, cfg.batch_size, seed=cfg.seed)
    eval_ds = input_fn(fn_args.eval_files, tft_output, cfg.batch_size, repeat=False)
    eval_steps = int(fn_args.eval_steps) if fn_args.eval_steps else None
    history = model.fit(
        train_ds,
        epochs=epochs,
        steps_per_epoch=math.ceil(steps / epochs),
        validation_data=eval_ds.take(eval_steps) if eval_steps else eval_ds,
        verbose=2,
    )
    metrics = {k: float(v[-1]) for k, v in history.history.items()}
    return model, tft_output, metrics


def run_fn(fn_args: Any) -> None:
    """TFX Trainer entry point."""
    custom = dict(fn_args.custom_config or {})
    data_root, as_of = snapshot_day(custom)
    sampling, window_spans = sampling_settings(custom)
    model, tft_output, metrics = train(fn_args)
    history = snapshots.DayHistory.read(data_root, as_of, str(custom.get(HISTORY_STATE_ROOT) or ""))
    source = f"the history state {history.state}" if history.state else "every span"
    log.info("trainer: serving snapshots as of %s from %s", as_of, source)
    module = build_export(
        model,
        tft_output,
        data_root,
        as_of,
        sampling,
        window_spans,
        model.cfg.sampling_prior_weight,
        history,
    )
    export(module, fn_args.serving_model_dir)
    summary = {
        "as_of": as_of.isoformat(),
        "catalogue_leads": module.n_leads,
        "history": history.state or "spans",
        **metrics,
    }
    log.info("trainer: exported %s (%s)", fn_args.serving_model_dir, summary)
    if getattr(fn_args, "model_run_dir", None):
        tf.io.gfile.makedirs(fn_args.model_run_dir)
        with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, SUMMARY_FILE), "w") as fh:
            json.dump(summary, fh, indent=2)
