"""Executor of the interaction ExampleGen: a thin ``Do()`` over ``generate()``, which runs
the Beam pipeline of `beam_examples` with the pipeline's ``beam_args``."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from typing import Any

import apache_beam as beam
from tfx.proto.orchestration import execution_result_pb2
from tfx.types import standard_artifact_utils

from aiqleads.errors import DataError
from components.example_gen import (
    beam_examples,
    history_state,
    interactions,
    offline_store,
    window,
)
from components.example_gen import spec as s
from components.executor_io import ComponentBeamExecutor, Execution, failed_execution

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class GenerateResult:
    """What ``generate`` wrote: the window and the example counts per split."""

    window: list[dt.date]
    counts: dict[str, int]


def span_number(day: dt.date) -> int:
    """The TFX span of a day: YYYYMMDD as an int (readable and increasing)."""
    return day.year * 10_000 + day.month * 100 + day.day


def generate(
    data_root: str,
    output_uri: str,
    window_spans: int,
    eval_days: int,
    sampling: interactions.SamplingConfig,
    as_of: dt.date | None = None,
    eval_negatives: int = 0,
    pipeline: beam.Pipeline | None = None,
    history_state_root: str = "",
) -> GenerateResult:
    """Build the window's examples on Beam and write ``Split-<name>`` folders under
    ``output_uri``; ``pipeline`` (not yet run) defaults to the DirectRunner's. With
    ``history_state_root``, start from the newest usable state there and leave one for the
    next day's run."""
    days = window.select_window(data_root, window_spans, as_of)
    run = beam_examples.plan(
        data_root, days, eval_days, sampling, eval_negatives, state_root=history_state_root
    )
    carried = (
        f"the history state as of {run.carried.as_of} and "
        if run.carried is not None
        else "no history state, "
        if history_state_root
        else ""
    )
    log.info(
        "ExampleGen: window %s..%s, %s%d spans read, %d user groups",
        days[0],
        days[-1],
        carried,
        len(run.events),
        run.shards,
    )
    counts = beam_examples.generate(pipeline or beam.Pipeline(), run, output_uri)
    return GenerateResult(window=days, counts=counts)


def generate_from_properties(
    output_uri: str,
    exec_properties: dict[str, Any],
    as_of: str,
    pipeline: beam.Pipeline | None = None,
) -> GenerateResult:
    """``generate`` with the component's execution properties."""
    return generate(
        data_root=exec_properties[s.DATA_ROOT_KEY],
        output_uri=output_uri,
        window_spans=int(exec_properties[s.WINDOW_SPANS_KEY]),
        eval_days=int(exec_properties[s.EVAL_DAYS_KEY]),
        sampling=interactions.SamplingConfig(
            negatives_per_positive=int(exec_properties[s.NEGATIVES_KEY]),
            hard_fraction=float(exec_properties[s.HARD_FRACTION_KEY]),
            popularity_exponent=float(exec_properties[s.POPULARITY_EXPONENT_KEY]),
            seed=int(exec_properties[s.SEED_KEY]),
        ),
        as_of=dt.date.fromisoformat(as_of) if as_of else None,
        eval_negatives=int(exec_properties.get(s.EVAL_NEGATIVES_KEY) or 0),
        pipeline=pipeline,
        history_state_root=(
            history_state.root_beside(output_uri)
            if int(exec_properties.get(s.CARRY_HISTORY_KEY) or 0)
            else ""
        ),
    )


class Executor(ComponentBeamExecutor):
    """Writes the Examples artifact (train/eval splits, span = newest day as YYYYMMDD)."""

    def execute(self, execution: Execution) -> execution_result_pb2.ExecutorOutput | None:
        examples = execution.output(s.EXAMPLES_KEY)
        exec_properties = execution.properties
        as_of = exec_properties.get(s.AS_OF_KEY) or ""
        try:
            result = generate_from_properties(
                examples.uri, exec_properties, as_of, self._make_beam_pipeline()
            )
        except DataError as e:
            # A failed execution whose message MLMD keeps: the bad span never reaches training.
            log.error("ExampleGen rejected the window: %s", e)
            return failed_execution(f"contract violation: {e}")
        examples.split_names = standard_artifact_utils.encode_split_names(list(interactions.SPLITS))
        examples.span = span_number(result.window[-1])
        examples.version = 0
        examples.set_string_custom_property(s.WINDOW_FIRST_PROPERTY, str(result.window[0]))
        examples.set_string_custom_property(s.WINDOW_LAST_PROPERTY, str(result.window[-1]))
        examples.set_string_custom_property(
            s.FEATURE_VIEWS_PROPERTY, json.dumps(offline_store.view_versions(), sort_keys=True)
        )
        for split, count in result.counts.items():
            examples.set_int_custom_property(s.COUNT_PROPERTY_PREFIX + split, count)
        log.info("ExampleGen window %s..%s: %s", result.window[0], result.window[-1], result.counts)
        return None
