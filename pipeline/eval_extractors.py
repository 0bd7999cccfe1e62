"""The Evaluator's extractors: TFMA's own, with the per-example extracts cut to what the
metrics and slices read before TFMA groups them by user.

The per-user metrics (``query_key``) make TFMA group every eval example's extracts by user
(``_GroupByQueryKey``, a combine to a list per key). By default each extract carries every
feature of the example and the serialized example itself, and a runner that holds that
grouping in one process (Beam's in-memory DirectRunner) holds all of them at once: a
4.1M-example eval split needs more than 24 GB that way (docs/benchmarks.md). The metrics
read only the label, the predictions, the weights, the user id (the query key) and the gain
(the label, ``engagement``); the slices read their own features. Everything else is dropped
while the extracts are still batched, and the metrics are the same
(tests/pipeline/test_eval_extractors.py).

The TFX Evaluator finds ``custom_extractors`` through its ``module_path`` (pipeline.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import apache_beam as beam
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.extractors import unbatch_extractor

TRIM_STAGE_NAME = "TrimExtractsForMetrics"
# Top-level extract keys the metrics and slicing stages never read: the serialized examples
# and the Arrow batch they were decoded from (TFMA's unbatching drops the latter anyway).
DROPPED_KEYS = (tfma.constants.INPUT_KEY, tfma.constants.ARROW_RECORD_BATCH_KEY)


def kept_features(eval_config: tfma.EvalConfig) -> frozenset[str]:
    """The features the metrics and slices of ``eval_config`` read: the query keys, the
    slicing features and the label keys (the ranking metrics' gain is the label)."""
    keys = {spec.query_key for spec in eval_config.metrics_specs if spec.query_key}
    for spec in eval_config.slicing_specs:
        keys.update(spec.feature_keys)
        keys.update(spec.feature_values)
    for model in eval_config.model_specs:
        if model.label_key:
            keys.add(model.label_key)
        keys.update(model.label_keys.values())
        if model.example_weight_key:
            keys.add(model.example_weight_key)
        keys.update(model.example_weight_keys.values())
    return frozenset(keys)


def trim_extract(extract: dict[str, Any], features: Iterable[str]) -> dict[str, Any]:
    """``extract`` without the dropped keys and with only ``features`` among its features."""
    keep = frozenset(features)
    trimmed = {k: v for k, v in extract.items() if k not in DROPPED_KEYS}
    for key in (tfma.constants.FEATURES_KEY, tfma.constants.TRANSFORMED_FEATURES_KEY):
        if isinstance(trimmed.get(key), dict):
            trimmed[key] = {k: v for k, v in trimmed[key].items() if k in keep}
    return trimmed


def trim_extractor(features: frozenset[str]) -> tfma.extractors.Extractor:
    """An extractor that applies `trim_extract` to every (batched) extract."""
    return tfma.extractors.Extractor(
        stage_name=TRIM_STAGE_NAME,
        ptransform=beam.Map(trim_extract, features=sorted(features)),
    )


def custom_extractors(
    eval_shared_model: Any, eval_config: tfma.EvalConfig, tensor_adapter_config: Any
) -> list[tfma.extractors.Extractor]:
    """TFMA's default extractors for this model and config, with the trimming stage right
    before the extracts are unbatched (the TFX Evaluator's ``custom_extractors`` hook)."""
    extractors = tfma.default_extractors(
        eval_shared_model=eval_shared_model,
        eval_config=eval_config,
        tensor_adapter_config=tensor_adapter_config,
        config_version=2,  # what TFMA assumes for a given EvalConfig without custom extractors
    )
    stages = [e.stage_name for e in extractors]
    at = stages.index(unbatch_extractor.UNBATCH_EXTRACTOR_STAGE_NAME)
    trim = trim_extractor(kept_features(eval_config))
    return extractors[:at] + [trim] + extractors[at:]
