"""Component spec of the interaction ExampleGen: parameter and output keys as constants."""

from __future__ import annotations

from tfx.types import component_spec, standard_artifacts

# What MLMD records of a run (the input fingerprint, the window on the Examples artifact)
# lives in a module without TFX, for the readers of MLMD (the model registry).
from components.example_gen.recorded import (  # noqa: F401 - part of the spec's names
    COUNT_PROPERTY_PREFIX,
    FEATURE_VIEWS_PROPERTY,
    FINGERPRINT_KEY,
    WINDOW_FIRST_PROPERTY,
    WINDOW_LAST_PROPERTY,
)

DATA_ROOT_KEY = "data_root"
WINDOW_SPANS_KEY = "window_spans"
EVAL_DAYS_KEY = "eval_days"
AS_OF_KEY = "as_of"  # ISO date or "" for the newest span
NEGATIVES_KEY = "negatives_per_positive"
HARD_FRACTION_KEY = "hard_fraction"
POPULARITY_EXPONENT_KEY = "popularity_exponent"
SEED_KEY = "seed"
EVAL_NEGATIVES_KEY = "eval_negatives"  # per eval user; 0: eval negatives like training's
# 1: runs hand the user history on to the next day's (`history_state`, beside the
# component's outputs: not a path here, so a copied pipeline root keeps the cache); 0: every
# run reads every span.
CARRY_HISTORY_KEY = "carry_history"
EXAMPLES_KEY = "examples"


class InteractionExampleGenSpec(component_spec.ComponentSpec):
    """Reads a rolling window of raw spans and emits labelled train/eval tf.Examples."""

    PARAMETERS = {
        DATA_ROOT_KEY: component_spec.ExecutionParameter(type=str),
        WINDOW_SPANS_KEY: component_spec.ExecutionParameter(type=int),
        EVAL_DAYS_KEY: component_spec.ExecutionParameter(type=int),
        AS_OF_KEY: component_spec.ExecutionParameter(type=str),
        NEGATIVES_KEY: component_spec.ExecutionParameter(type=int),
        HARD_FRACTION_KEY: component_spec.ExecutionParameter(type=float),
        POPULARITY_EXPONENT_KEY: component_spec.ExecutionParameter(type=float),
        SEED_KEY: component_spec.ExecutionParameter(type=int),
        EVAL_NEGATIVES_KEY: component_spec.ExecutionParameter(type=int, optional=True),
        FINGERPRINT_KEY: component_spec.ExecutionParameter(type=str),
        CARRY_HISTORY_KEY: component_spec.ExecutionParameter(type=int, optional=True),
    }
    INPUTS = {}
    OUTPUTS = {
        EXAMPLES_KEY: component_spec.ChannelParameter(type=standard_artifacts.Examples),
    }
