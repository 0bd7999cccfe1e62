"""The interaction ExampleGen component: a constructor over the spec and executor."""

from __future__ import annotations

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts

from components.example_gen import executor, interactions, spec


class InteractionExampleGen(base_component.BaseComponent):
    """Joins a rolling window of raw spans into labelled train/eval tf.Examples.

    ``input_fingerprint`` (``window.fingerprint``) is computed where the pipeline is built;
    it changes when a span arrives or a file changes, so caching reuses unchanged runs.
    With ``carry_history`` each run leaves the user history for the next day's
    (`history_state`, in ``history_state/`` beside the component's outputs).
    """

    SPEC_CLASS = spec.InteractionExampleGenSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(
        self,
        data_root: str,
        window_spans: int,
        eval_days: int,
        input_fingerprint: str,
        negatives_per_positive: int = 4,
        hard_fraction: float = interactions.SamplingConfig.hard_fraction,
        popularity_exponent: float = interactions.SamplingConfig.popularity_exponent,
        seed: int = 0,
        as_of: str = "",
        eval_negatives: int = 0,
        carry_history: bool = False,
    ) -> None:
        component_spec = spec.InteractionExampleGenSpec(
            data_root=data_root,
            window_spans=window_spans,
            eval_days=eval_days,
            as_of=as_of,
            negatives_per_positive=negatives_per_positive,
            hard_fraction=hard_fraction,
            popularity_exponent=popularity_exponent,
            seed=seed,
            eval_negatives=eval_negatives,
            input_fingerprint=input_fingerprint,
            carry_history=int(carry_history),
            examples=types.Channel(type=standard_artifacts.Examples),
        )
        super().__init__(spec=component_spec)
