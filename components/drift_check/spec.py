"""Component spec of the drift check: keys as constants and its report artifact type."""

from __future__ import annotations

from tfx.types import artifact, component_spec, standard_artifacts

from components.kfp_visuals import HtmlVisualization, ScalarMetrics

EXAMPLES_KEY = "examples"
SCHEMA_KEY = "schema"
REPORT_KEY = "report"
# The report as the Kubeflow Pipelines UI shows it: a page, and each measurement's value.
VISUALIZATION_KEY = "visualization"
METRICS_KEY = "metrics"
# {"numeric": {feature: js}, "categorical": {feature: linf}, "regional_median_shift": x | null,
#  "population": [feature, ...]}
THRESHOLDS_KEY = "thresholds_json"
TRIGGER_REASON_KEY = "trigger_reason"  # why the run started: schedule, manual, drift:<alert>...
SERVING_LOG_DIR_KEY = "serving_log_dir"  # "" when there are no serving logs
MAX_SERVING_RECORDS_KEY = "max_serving_records"

REPORT_JSON = "drift_report.json"
REPORT_TEXT = "drift_report.txt"
# The training positives' served features and the thresholds, for the online monitor
# (published next to the pushed model by `publish.PublishReference`).
REFERENCE_STATISTICS = "reference_statistics.pb"
REFERENCE_SCHEMA = "reference_schema.pbtxt"
PASSED_PROPERTY = "passed"
REASON_PROPERTY = "reason"
TRIGGER_REASON_PROPERTY = "trigger_reason"
SHIFTS_PROPERTY = "population_shifts"  # recorded, not blocking (an alert-triggered run)


class DriftReport(artifact.Artifact):
    """The drift/skew report of one run (JSON and text files in the artifact's folder)."""

    # KFP v2 needs custom artifact types named "<namespace>.<Name>" (KubeflowV2DagRunner).
    TYPE_NAME = "aiqleads.DriftReport"


class DriftCheckSpec(component_spec.ComponentSpec):
    """Newest span vs previous span (drift) and training vs serving logs (skew)."""

    PARAMETERS = {
        THRESHOLDS_KEY: component_spec.ExecutionParameter(type=str),
        SERVING_LOG_DIR_KEY: component_spec.ExecutionParameter(type=str),
        MAX_SERVING_RECORDS_KEY: component_spec.ExecutionParameter(type=int),
        TRIGGER_REASON_KEY: component_spec.ExecutionParameter(type=str, optional=True),
    }
    INPUTS = {
        EXAMPLES_KEY: component_spec.ChannelParameter(type=standard_artifacts.Examples),
        SCHEMA_KEY: component_spec.ChannelParameter(type=standard_artifacts.Schema),
    }
    OUTPUTS = {
        REPORT_KEY: component_spec.ChannelParameter(type=DriftReport),
        VISUALIZATION_KEY: component_spec.ChannelParameter(type=HtmlVisualization),
        METRICS_KEY: component_spec.ChannelParameter(type=ScalarMetrics),
    }
