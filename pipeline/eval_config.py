"""The TFMA evaluation config: ranking metrics per user, AUC, slices and the push gate.

The gate blesses a candidate when, on the overall slice, AUC and NDCG@k reach their value
thresholds and AUC does not drop by more than ``max_auc_drop`` against the latest blessed
model (the change threshold is skipped on the first run, when there is no baseline).
"""

from __future__ import annotations

import json

import tensorflow_model_analysis as tfma

from pipeline import ranking_metrics
from pipeline.config import EvaluatorConfig
from transforms import features as f

SERVING_SIGNATURE = "serving_default"
SLICE_FEATURES = (f.REGION, f.PROPERTY_TYPE, f.PRICE_BAND)
METRICS_MODULE = ranking_metrics.__name__


def _config(**kwargs: object) -> str:
    """TFMA metric configs are JSON objects without the outer braces."""
    return json.dumps(kwargs)[1:-1]


def _overall(threshold: tfma.MetricThreshold) -> tfma.PerSliceMetricThreshold:
    """Gate on the overall slice only: small slices inform, they do not block a push."""
    return tfma.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()], threshold=threshold)


def build_eval_config(cfg: EvaluatorConfig) -> tfma.EvalConfig:
    """Model spec on the raw-example signature, label ``engagement``, metrics and slices."""
    higher = tfma.MetricDirection.HIGHER_IS_BETTER
    auc_threshold = tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": cfg.min_auc}),
        change_threshold=tfma.GenericChangeThreshold(
            direction=higher, absolute={"value": -cfg.max_auc_drop}
        ),
    )
    ndcg_threshold = tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": cfg.min_ndcg}),
        change_threshold=tfma.GenericChangeThreshold(
            direction=higher, absolute={"value": -cfg.max_ndcg_drop}
        ),
    )
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(signature_name=SERVING_SIGNATURE, label_key=f.ENGAGEMENT)],
        slicing_specs=[tfma.SlicingSpec()]
        + [tfma.SlicingSpec(feature_keys=[key]) for key in SLICE_FEATURES],
        metrics_specs=[
            tfma.MetricsSpec(
                metrics=[
                    tfma.MetricConfig(class_name="ExampleCount"),
                    tfma.MetricConfig(
                        class_name=ranking_metrics.EngagementAUC.__name__,
                        module=METRICS_MODULE,
                        config=_config(gain_key=f.ENGAGEMENT),
                        per_slice_thresholds=[_overall(auc_threshold)],
                    ),
                ]
            ),
            # NDCG@k takes its cut-off from the spec's binarize options, so that the gate's
            # metric key carries the same `top_k` sub-key as the computed metric.
            tfma.MetricsSpec(
                query_key=f.USER_ID,
                binarize=tfma.BinarizationOptions(top_k_list={"values": [cfg.top_k]}),
                metrics=[
                    tfma.MetricConfig(
                        class_name="NDCG",
                        config=_config(gain_key=f.ENGAGEMENT),
                        per_slice_thresholds=[_overall(ndcg_threshold)],
                    ),
                ],
            ),
            tfma.MetricsSpec(
                query_key=f.USER_ID,
                metrics=[
                    tfma.MetricConfig(
                        class_name=ranking_metrics.TopKRanking.__name__,
                        module=METRICS_MODULE,
                        config=_config(gain_key=f.ENGAGEMENT, top_k=cfg.top_k),
                    ),
                ],
            ),
        ],
    )
