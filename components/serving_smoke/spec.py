"""Component spec of the serving smoke validation: keys as constants."""

from __future__ import annotations

from tfx.components.evaluator import constants as blessing_contract
from tfx.types import component_spec, standard_artifacts

from components.kfp_visuals import MarkdownVisualization, ScalarMetrics

MODEL_KEY = "model"
UPSTREAM_BLESSING_KEY = "upstream_blessing"  # the Evaluator's blessing (optional)
EVALUATION_KEY = "evaluation"  # the Evaluator's TFMA result (optional)
BLESSING_KEY = "blessing"
# The gate as the Kubeflow Pipelines UI shows it: the evaluation table and the smoke checks,
# and the candidate's overall metrics.
SUMMARY_KEY = "summary"
METRICS_KEY = "metrics"
LATENCY_BUDGET_MS_KEY = "latency_budget_ms"
LATENCY_REQUESTS_KEY = "latency_requests"
TOP_K_KEY = "top_k"

REPORT_JSON = "smoke_report.json"
REASON_PROPERTY = "reason"
P95_PROPERTY = "recommend_p95_ms"

# The ModelBlessing contract the Pusher reads (`model_utils.is_model_blessed`): TFX's names,
# the same the Evaluator writes.
BLESSED_PROPERTY = blessing_contract.ARTIFACT_PROPERTY_BLESSED_KEY
BLESSED_VALUE = blessing_contract.BLESSED_VALUE
NOT_BLESSED_VALUE = blessing_contract.NOT_BLESSED_VALUE
CURRENT_MODEL_PROPERTY = blessing_contract.ARTIFACT_PROPERTY_CURRENT_MODEL_URI_KEY
CURRENT_MODEL_ID_PROPERTY = blessing_contract.ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY
BLESSED_FILE = blessing_contract.BLESSED_FILE_NAME
NOT_BLESSED_FILE = blessing_contract.NOT_BLESSED_FILE_NAME


class ServingSmokeValidationSpec(component_spec.ComponentSpec):
    """Load the candidate SavedModel, send canary requests, time `recommend`."""

    PARAMETERS = {
        LATENCY_BUDGET_MS_KEY: component_spec.ExecutionParameter(type=float),
        LATENCY_REQUESTS_KEY: component_spec.ExecutionParameter(type=int),
        TOP_K_KEY: component_spec.ExecutionParameter(type=int),
    }
    INPUTS = {
        MODEL_KEY: component_spec.ChannelParameter(type=standard_artifacts.Model),
        UPSTREAM_BLESSING_KEY: component_spec.ChannelParameter(
            type=standard_artifacts.ModelBlessing, optional=True
        ),
        EVALUATION_KEY: component_spec.ChannelParameter(
            type=standard_artifacts.ModelEvaluation, optional=True
        ),
    }
    OUTPUTS = {
        BLESSING_KEY: component_spec.ChannelParameter(type=standard_artifacts.ModelBlessing),
        SUMMARY_KEY: component_spec.ChannelParameter(type=MarkdownVisualization),
        METRICS_KEY: component_spec.ChannelParameter(type=ScalarMetrics),
    }
