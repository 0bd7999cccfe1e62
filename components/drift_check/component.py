"""The drift check component: a constructor over the spec and executor."""

from __future__ import annotations

import json

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec

from components.drift_check import executor, spec


class DriftCheck(base_component.BaseComponent):
    """Stops the run before training when the newest span drifted or serving skews.

    ``numeric``/``categorical`` map feature names to Jensen-Shannon / L-infinity thresholds;
    ``regional_median_shift`` bounds the worst region's market median move (None: off).
    In a run whose ``trigger_reason`` is an alert (``drift:``/``quality:``), violations on
    the ``population`` features are recorded and do not stop it.
    """

    SPEC_CLASS = spec.DriftCheckSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(
        self,
        examples: types.BaseChannel,
        schema: types.BaseChannel,
        numeric: dict[str, float],
        categorical: dict[str, float],
        regional_median_shift: float | None = None,
        serving_log_dir: str | None = None,
        max_serving_records: int = 200_000,
        population: tuple[str, ...] = (),
        trigger_reason: str = "",
    ) -> None:
        thresholds = json.dumps(
            {
                "numeric": numeric,
                "categorical": categorical,
                "regional_median_shift": regional_median_shift,
                "population": list(population),
            },
            sort_keys=True,
        )
        component_spec = spec.DriftCheckSpec(
            examples=examples,
            schema=schema,
            thresholds_json=thresholds,
            serving_log_dir=serving_log_dir or "",
            max_serving_records=max_serving_records,
            trigger_reason=trigger_reason,
            report=types.Channel(type=spec.DriftReport),
            visualization=types.Channel(type=spec.HtmlVisualization),
            metrics=types.Channel(type=spec.ScalarMetrics),
        )
        super().__init__(spec=component_spec)
