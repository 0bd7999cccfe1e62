"""`ServingSmokeValidation`: a ModelBlessing the Pusher can be gated on."""

from __future__ import annotations

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import channel_utils, standard_artifacts

from components.serving_smoke import spec as s
from components.serving_smoke.executor import Executor

DEFAULT_LATENCY_REQUESTS = 200
DEFAULT_TOP_K = 10


class ServingSmokeValidation(base_component.BaseComponent):
    """Bless ``model`` when it serves canary requests correctly within the latency budget.

    When ``blessing`` (the Evaluator's) is given and not blessed, the output is not blessed
    either, without loading the model: the Pusher needs only this one blessing. With
    ``evaluation`` (the Evaluator's), the gate's summary for the Kubeflow Pipelines UI holds
    the evaluation table too.
    """

    SPEC_CLASS = s.ServingSmokeValidationSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(
        self,
        model: types.BaseChannel,
        blessing: types.BaseChannel | None = None,
        evaluation: types.BaseChannel | None = None,
        latency_budget_ms: float = 20.0,
        latency_requests: int = DEFAULT_LATENCY_REQUESTS,
        top_k: int = DEFAULT_TOP_K,
    ) -> None:
        if not 0 < latency_budget_ms <= 10_000:
            raise ValueError(f"latency_budget_ms must be in (0, 10000], got {latency_budget_ms}")
        if not 10 <= latency_requests <= 100_000:
            raise ValueError(f"latency_requests must be in [10, 100000], got {latency_requests}")
        if not 1 <= top_k <= 100:
            raise ValueError(f"top_k must be in [1, 100], got {top_k}")
        spec = s.ServingSmokeValidationSpec(
            model=model,
            upstream_blessing=blessing,
            evaluation=evaluation,
            latency_budget_ms=float(latency_budget_ms),
            latency_requests=int(latency_requests),
            top_k=int(top_k),
            blessing=channel_utils.as_channel([standard_artifacts.ModelBlessing()]),
            summary=types.Channel(type=s.MarkdownVisualization),
            metrics=types.Channel(type=s.ScalarMetrics),
        )
        super().__init__(spec=spec)
