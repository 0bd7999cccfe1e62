"""``create_pipeline(config)``: the TFX pipeline wiring, nothing else (docs/pipeline.md).

ExampleGen -> StatisticsGen -> ImportSchemaGen -> ExampleValidator -> DriftCheck ->
Transform -> Trainer -> Resolver (latest blessed model) -> Evaluator ->
ServingSmokeValidation -> Pusher -> PublishReference (the drift check's training statistics
next to the pushed model, for the online monitor). Orchestrator-specific inputs (pipeline
root, metadata connection, Beam arguments) come in as arguments, so the local and Kubeflow
runners share it.
"""

from __future__ import annotations

import datetime as dt
import pathlib
from typing import Any

from tfx import v1 as tfx
from tfx.types import standard_component_specs as tfx_keys

from aiqleads.data import uris
from components.drift_check import spec as drift_spec
from components.drift_check.component import DriftCheck
from components.drift_check.publish import PublishReference
from components.example_gen import history_state, window
from components.example_gen import spec as example_gen_spec
from components.example_gen.component import InteractionExampleGen
from components.trainer import run_fn
from pipeline import code_version, eval_config
from pipeline.config import PipelineConfig

SCHEMA_PATH = pathlib.Path(__file__).resolve().parent / "schema" / "schema.pbtxt"
PREPROCESSING_FN = "transforms.preprocessing.preprocessing_fn"
RUN_FN = "components.trainer.run_fn.run_fn"
EVAL_EXTRACTORS = "pipeline.eval_extractors"  # its custom_extractors, the Evaluator's hook

# Component ids, in run order (also the progress and benchmark labels).
EXAMPLE_GEN = "InteractionExampleGen"
STATISTICS_GEN = "StatisticsGen"
SCHEMA_GEN = "ImportSchemaGen"
EXAMPLE_VALIDATOR = "ExampleValidator"
DRIFT_CHECK = "DriftCheck"
TRANSFORM = "Transform"
TRAINER = "Trainer"
RESOLVER = "latest_blessed_model_resolver"
EVALUATOR = "Evaluator"
SMOKE = "ServingSmokeValidation"
PUSHER = "Pusher"
PUBLISH_REFERENCE = "PublishReference"

RUNTIME_WINDOW = "run-time window"  # ExampleGen's fingerprint when the window is chosen late
CODE_FINGERPRINT_KEY = code_version.CODE_FINGERPRINT_KEY  # Transform and Trainer custom_config

# The sampling settings the Trainer receives, SamplingConfig fields of the same names.
SAMPLING_SETTINGS = ("negatives_per_positive", "hard_fraction", "popularity_exponent")
# In the Trainer's custom_config too, though run_fn does not read it (the smoke check has it).
LATENCY_BUDGET_MS = "latency_budget_ms"

STAGES = ("drift_check", "transform", "push")
"""How far to wire: ``push`` is the product; the shorter ones serve development and tests."""


def window_inputs(config: PipelineConfig) -> tuple[str, str]:
    """(fingerprint, as_of ISO date) of the window the run will read.

    Computed where the pipeline is built: the fingerprint (the window's files, then the
    ExampleGen code) keys ExampleGen's cache, and the Trainer builds its serving snapshots
    as of the window's last span.
    """
    days = window.select_window(config.data_path, config.example_gen.window_spans, config.as_of)
    data = window.fingerprint(config.data_path, days)
    code = code_version.fingerprint(code_version.EXAMPLE_GEN_SOURCES)
    return f"{data}:{code}", days[-1].isoformat()


def history_state_root(config: PipelineConfig, pipeline_root: str | None = None) -> str:
    """Where ExampleGen leaves the history state ("" when ``carry_history`` is off): in its
    component folder of the pipeline root (`history_state.root_beside`)."""
    if not config.example_gen.carry_history:
        return ""
    root = pipeline_root or str(config.pipeline_root)
    return uris.join(root, EXAMPLE_GEN, history_state.STATE_DIR)


def trainer_custom_config(
    config: PipelineConfig, as_of: str, state_root: str = ""
) -> dict[str, Any]:
    """What ``run_fn`` receives as ``custom_config``."""
    eg = config.example_gen
    return {
        run_fn.DATA_ROOT: str(config.data_path),
        run_fn.AS_OF: as_of,
        run_fn.HISTORY_STATE_ROOT: state_root,
        LATENCY_BUDGET_MS: config.smoke.latency_budget_ms,
        # How ExampleGen drew the negatives (SamplingConfig's fields), for recommend's
        # sampling-bias correction.
        run_fn.SAMPLING: {
            **{name: getattr(eg, name) for name in SAMPLING_SETTINGS},
            run_fn.WINDOW_SPANS: eg.window_spans,
        },
        CODE_FINGERPRINT_KEY: code_version.fingerprint(code_version.TRAINER_SOURCES),
        **config.trainer.hyperparameters,
    }


def create_pipeline(
    config: PipelineConfig,
    metadata_connection_config: Any | None = None,
    beam_pipeline_args: list[str] | None = None,
    pipeline_root: str | None = None,
    stage: str = "push",
    as_of: dt.date | None = None,
    runtime_window: bool = False,
) -> tfx.dsl.Pipeline:
    """The pipeline for ``config``; ``stage`` stops the wiring early (see ``STAGES``).

    By default the window (the newest spans on or before ``config.as_of``) is chosen here,
    and its fingerprint keys the cache. ``runtime_window`` (what a package a KFP recurring
    run re-runs every day needs) leaves the choice to the run: ExampleGen reads the newest
    spans present when it executes, the Trainer snapshots as of the newest span when it
    executes, and caching is off (the same properties mean different data each day).
    """
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
    if as_of is not None:
        config = config.with_overrides(as_of=as_of)
    if runtime_window:
        if config.as_of is not None:
            raise ValueError("a run-time window takes the newest spans: as_of must not be set")
        code = code_version.fingerprint(code_version.EXAMPLE_GEN_SOURCES)
        fingerprint, window_end = f"{RUNTIME_WINDOW}:{code}", ""
        config = config.with_overrides(enable_cache=False)
    else:
        fingerprint, window_end = window_inputs(config)
    eg = config.example_gen

    example_gen = InteractionExampleGen(
        data_root=str(config.data_path),
        window_spans=eg.window_spans,
        eval_days=eg.eval_days,
        input_fingerprint=fingerprint,
        negatives_per_positive=eg.negatives_per_positive,
        hard_fraction=eg.hard_fraction,
        popularity_exponent=eg.popularity_exponent,
        seed=eg.seed,
        as_of=window_end,
        eval_negatives=eg.eval_negatives,
        carry_history=eg.carry_history,
    ).with_id(EXAMPLE_GEN)
    examples = example_gen.outputs[example_gen_spec.EXAMPLES_KEY]
    statistics_gen = tfx.components.StatisticsGen(examples=examples).with_id(STATISTICS_GEN)
    schema_gen = tfx.components.ImportSchemaGen(schema_file=str(SCHEMA_PATH)).with_id(SCHEMA_GEN)
    schema = schema_gen.outputs[tfx_keys.SCHEMA_KEY]
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs[tfx_keys.STATISTICS_KEY], schema=schema
    ).with_id(EXAMPLE_VALIDATOR)
    components: list[Any] = [example_gen, statistics_gen, schema_gen, example_validator]

    gate: Any = example_validator
    if config.drift.enabled:
        drift_check = DriftCheck(
            examples=examples,
            schema=schema,
            numeric=dict(config.drift.numeric),
            categorical=dict(config.drift.categorical),
            regional_median_shift=config.drift.regional_median_shift,
            serving_log_dir=str(config.serving_logs_path),
            max_serving_records=config.drift.max_serving_records,
            population=tuple(config.drift.population_features),
            trigger_reason=config.trigger_reason,
        ).with_id(DRIFT_CHECK)
        drift_check.add_upstream_node(example_validator)
        components.append(drift_check)
        gate = drift_check

    if stage != "drift_check":
        transform = tfx.components.Transform(
            examples=examples,
            schema=schema,
            preprocessing_fn=PREPROCESSING_FN,
            # Only a cache key: preprocessing_fn takes no custom_config, so TFX passes none.
            custom_config={
                CODE_FINGERPRINT_KEY: code_version.fingerprint(code_version.TRANSFORM_SOURCES)
            },
        ).with_id(TRANSFORM)
        # Training data never passes a failed drift check, nor an unvalidated window.
        transform.add_upstream_node(gate)
        components.append(transform)

    if stage == "push":
        components += _train_evaluate_push(
            config, examples, schema, transform, window_end, pipeline_root
        )
        if config.drift.enabled:
            by_id = {c.id: c for c in components}
            pusher, evaluator = by_id[PUSHER], by_id[EVALUATOR]
            components.append(
                PublishReference(
                    pushed_model=pusher.outputs[tfx_keys.PUSHED_MODEL_KEY],
                    report=drift_check.outputs[drift_spec.REPORT_KEY],
                    evaluation=evaluator.outputs[tfx_keys.EVALUATION_KEY],
                ).with_id(PUBLISH_REFERENCE)
            )

    return tfx.dsl.Pipeline(
        pipeline_name=config.name,
        pipeline_root=pipeline_root or str(config.pipeline_root),
        components=components,
        enable_cache=config.enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=list(beam_pipeline_args or config.beam_args),
    )


def _train_evaluate_push(
    config, examples, schema, transform, window_end, pipeline_root
) -> list[Any]:
    # Imported here: the model helper's packages are only needed for the full pipeline.
    from components.serving_smoke import spec as smoke_spec
    from components.serving_smoke.component import ServingSmokeValidation

    trainer = tfx.components.Trainer(
        run_fn=RUN_FN,
        examples=transform.outputs[tfx_keys.TRANSFORMED_EXAMPLES_KEY],
        transform_graph=transform.outputs[tfx_keys.TRANSFORM_GRAPH_KEY],
        schema=schema,
        train_args=tfx.proto.TrainArgs(num_steps=config.trainer.train_steps),
        eval_args=tfx.proto.EvalArgs(num_steps=config.trainer.eval_steps),
        custom_config=trainer_custom_config(
            config, window_end, history_state_root(config, pipeline_root)
        ),
    ).with_id(TRAINER)
    resolver = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id(RESOLVER)
    evaluator = tfx.components.Evaluator(
        examples=examples,
        model=trainer.outputs[tfx_keys.MODEL_KEY],
        baseline_model=resolver.outputs[tfx_keys.MODEL_KEY],  # the `model=` above
        eval_config=eval_config.build_eval_config(config.evaluator),
        module_path=EVAL_EXTRACTORS,  # the per-example extracts cut before the per-user grouping
    ).with_id(EVALUATOR)
    smoke = ServingSmokeValidation(
        model=trainer.outputs[tfx_keys.MODEL_KEY],
        blessing=evaluator.outputs[tfx_keys.BLESSING_KEY],
        evaluation=evaluator.outputs[tfx_keys.EVALUATION_KEY],
        latency_budget_ms=config.smoke.latency_budget_ms,
    ).with_id(SMOKE)
    pusher = tfx.components.Pusher(
        model=trainer.outputs[tfx_keys.MODEL_KEY],
        model_blessing=smoke.outputs[smoke_spec.BLESSING_KEY],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(
                base_directory=str(config.serving_model_path)
            )
        ),
    ).with_id(PUSHER)
    return [trainer, resolver, evaluator, smoke, pusher]
