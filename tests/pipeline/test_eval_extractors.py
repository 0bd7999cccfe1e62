"""The Evaluator's trimmed extracts: only the features the metrics and slices read reach TFMA's
per-user grouping, and every metric of every slice is the same as with TFMA's defaults (NDCG
within the spread that the order of tied predictions gives two runs of the defaults).

On the closed loop's smoke world (`tests/loop_fixtures.py`): its first pushed model, its
first ExampleGen eval split and the Evaluator's results of that run.
"""

from __future__ import annotations

import json

import pytest
from loop_fixtures import LoopWorld, first_examples  # loaded by tests/conftest.py

pytestmark = pytest.mark.e2e

# TFMA's NDCG sorts a user's examples by prediction, and tied predictions stay in the order
# Beam's grouping hands them over, which changes from run to run. Two runs of TFMA's own
# defaults on a fresh loop world's first model and eval split differed in 33 of 343 metrics,
# every one an NDCG, by at most 0.0032; every other metric was equal. So NDCG is compared
# within three times that, the rest exactly.
NDCG_TIES = 0.01


def _model_and_eval_split(loop_world: LoopWorld):
    from pipeline import registry

    cfg, store, examples = first_examples(loop_world)
    evaluation = min(registry.artifacts(store, "ModelEvaluation"), key=lambda a: a.id)
    model = loop_world.model_base / str(loop_world.versions()[0])
    return cfg, model, f"{examples.uri}/Split-eval/*", evaluation.uri


def _all_metrics(output_dir) -> dict[tuple[str, str], float]:
    import tensorflow_model_analysis as tfma

    out = {}
    for metrics_for_slice in tfma.load_metrics(str(output_dir)):
        for kv in metrics_for_slice.metric_keys_and_values:
            if kv.value.HasField("double_value"):
                out[(str(metrics_for_slice.slice_key), str(kv.key))] = kv.value.double_value.value
    return out


def _extract_features(model, eval_glob, eval_config, trimmed: bool, out) -> list[dict]:
    """Per batched extract after the trimming stage (or where it would be): its top-level
    keys and its feature names."""
    import apache_beam as beam
    import tensorflow_model_analysis as tfma
    from tfx_bsl.public import tfxio

    from pipeline import eval_extractors

    shared = tfma.default_eval_shared_model(
        eval_saved_model_path=str(model), eval_config=eval_config
    )
    extractors = eval_extractors.custom_extractors(shared, eval_config, None)
    names = [e.stage_name for e in extractors]
    if trimmed:
        extractors = extractors[: names.index(eval_extractors.TRIM_STAGE_NAME) + 1]
    else:
        extractors = extractors[: names.index(eval_extractors.TRIM_STAGE_NAME)]
    source = tfxio.TFExampleRecord(
        file_pattern=eval_glob, raw_record_column_name=tfma.constants.ARROW_INPUT_COLUMN
    )
    with beam.Pipeline() as p:
        extracts = p | source.BeamSource() | tfma.BatchedInputsToExtracts()
        for e in extractors:
            extracts = extracts | e.stage_name >> e.ptransform
        _ = (
            extracts
            | beam.Map(
                lambda x: json.dumps(
                    {
                        "keys": sorted(x),
                        "features": sorted(x[tfma.constants.FEATURES_KEY]),
                        "transformed": sorted(x.get(tfma.constants.TRANSFORMED_FEATURES_KEY) or ()),
                        "examples": len(x[tfma.constants.LABELS_KEY]),
                    }
                )
            )
            | beam.io.WriteToText(str(out))
        )
    return [json.loads(line) for path in out.parent.glob(f"{out.name}*") for line in path.open()]


def test_trimmed_extracts_keep_only_what_the_metrics_read_and_give_the_same_metrics(
    loop_world, tmp_path
):
    import tensorflow_model_analysis as tfma

    from pipeline import eval_extractors
    from pipeline.gate_check import evaluate, standalone_eval_config
    from transforms import features as f

    cfg, model, eval_glob, evaluation_uri = _model_and_eval_split(loop_world)
    eval_config = standalone_eval_config(cfg.evaluator)
    kept = eval_extractors.kept_features(eval_config)
    assert kept == {f.USER_ID, f.ENGAGEMENT, f.REGION, f.PROPERTY_TYPE, f.PRICE_BAND}

    before = _extract_features(model, eval_glob, eval_config, False, tmp_path / "before")
    after = _extract_features(model, eval_glob, eval_config, True, tmp_path / "after")
    assert before and sum(b["examples"] for b in before) == sum(a["examples"] for a in after)
    assert all(set(b["features"]) > kept for b in before)  # the defaults carry every feature
    assert all(tfma.constants.INPUT_KEY in b["keys"] for b in before)
    assert all(set(a["features"]) == kept for a in after)
    assert all(set(a["transformed"]) <= kept for a in after)
    assert not any(tfma.constants.INPUT_KEY in a["keys"] for a in after)

    # The pipeline's own Evaluator (its extractors) against TFMA's defaults on the same model
    # and split: the first run had no baseline, so it computed the candidate's metrics only.
    default = _all_metrics_of(evaluate, model, eval_glob, cfg, tmp_path / "default", False)
    trimmed = _all_metrics(evaluation_uri)
    slices = {s for s, _ in default}
    assert len(slices) > 5, slices  # the overall slice and the region, type and band slices
    assert any("ndcg" in k for _, k in default) and any("hit_rate" in k for _, k in default)
    assert trimmed.keys() == default.keys()
    for key, value in default.items():
        tolerance = NDCG_TIES if 'name: "ndcg"' in key[1] else 1e-12
        assert trimmed[key] == pytest.approx(value, rel=1e-9, abs=tolerance, nan_ok=True), key


def _all_metrics_of(evaluate, model, eval_glob, cfg, output_dir, trimmed):
    evaluate(model, eval_glob, cfg.evaluator, output_dir, trimmed=trimmed)
    return _all_metrics(output_dir)
