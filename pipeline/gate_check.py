"""Any SavedModel through the Evaluator's metrics and value thresholds, outside a pipeline run.

The offline gate is calibrated with it (`benchmarks/offline_gate.py`: the trained model,
per-region popularity, a degraded model) and the tests check with it that popularity fails
the value thresholds: the same eval config (`pipeline.eval_config`), the same TFMA and
extractors (`pipeline.eval_extractors`), on an ExampleGen eval split. Only the change
thresholds are left out, since they need a baseline model (the pipeline's Evaluator applies
them against the latest blessed one).
"""

from __future__ import annotations

import pathlib

import tensorflow_model_analysis as tfma

from components.evaluation_table import overall_metrics
from pipeline.config import EvaluatorConfig
from pipeline.eval_config import build_eval_config
from pipeline.eval_extractors import custom_extractors
from pipeline.ranking_metrics import AUC_NAME

NDCG = "ndcg"


def standalone_eval_config(cfg: EvaluatorConfig) -> tfma.EvalConfig:
    """The Evaluator's eval config without its change thresholds (no baseline here)."""
    eval_config = build_eval_config(cfg)
    for spec in eval_config.metrics_specs:
        for metric in spec.metrics:
            for threshold in metric.per_slice_thresholds:
                threshold.threshold.ClearField("change_threshold")
    return eval_config


def evaluate(
    model_dir: str | pathlib.Path,
    eval_files: str,
    cfg: EvaluatorConfig,
    output_dir: str | pathlib.Path,
    trimmed: bool = True,
) -> dict[str, float]:
    """Overall-slice metrics of ``model_dir`` on the TFRecords ``eval_files`` (a glob), with
    the Evaluator's extractors (``trimmed``) or TFMA's defaults (every feature kept)."""
    eval_config = standalone_eval_config(cfg)
    shared = tfma.default_eval_shared_model(
        eval_saved_model_path=str(model_dir), eval_config=eval_config
    )
    tfma.run_model_analysis(
        eval_shared_model=shared,
        eval_config=eval_config,
        data_location=eval_files,
        file_format="tfrecords",
        output_path=str(output_dir),
        extractors=custom_extractors(shared, eval_config, None) if trimmed else None,
    )
    return {row.name: row.candidate for row in overall_metrics(str(output_dir))}


def value_failures(metrics: dict[str, float], cfg: EvaluatorConfig) -> list[str]:
    """The value thresholds of the gate that ``metrics`` miss (empty: it passes them)."""
    ndcg = metrics.get(f"{NDCG}@{cfg.top_k}", float("nan"))
    auc = metrics.get(AUC_NAME, float("nan"))
    out = []
    if not ndcg >= cfg.min_ndcg:
        out.append(f"{NDCG}@{cfg.top_k} {ndcg:.4f} < {cfg.min_ndcg}")
    if not auc >= cfg.min_auc:
        out.append(f"{AUC_NAME} {auc:.4f} < {cfg.min_auc}")
    return out
