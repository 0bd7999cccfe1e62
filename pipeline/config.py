"""The pipeline configuration: one typed, frozen object loaded from YAML and the environment.

Precedence: defaults < YAML file < environment variables ``AIQLEADS_PIPELINE__<SECTION>__<KEY>``
(for example ``AIQLEADS_PIPELINE__EXAMPLE_GEN__WINDOW_SPANS=7``; values are parsed as YAML
scalars). Unknown keys are errors. Relative paths resolve against the repository root.
"""

from __future__ import annotations

import datetime as dt
import pathlib
from typing import Annotated, Any

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from aiqleads import layout, settings_io
from components.example_gen.interactions import SamplingConfig
from components.trainer.model_config import ModelConfig
from transforms import features as f

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
ENV_PREFIX = "AIQLEADS_PIPELINE__"
WHAT = "pipeline config"
DEFAULT_RUNS_DIR = "runs"
MODEL_NAME = "lead_recommender"

# Per-feature thresholds, set above the day-to-day variation measured on the synthetic
# data sets (docs/pipeline.md). Daily market demand and trend swing too much to gate on.
DEFAULT_NUMERIC_DRIFT = {
    f.LEAD_LATITUDE: 0.1,
    f.LEAD_LONGITUDE: 0.1,
    f.PRICE: 0.15,
    f.MARKET_MEDIAN_PRICE: 0.3,
    f.USER_LATITUDE: 0.1,
    f.USER_LONGITUDE: 0.1,
}
DEFAULT_CATEGORICAL_DRIFT = {
    f.REGION: 0.1,
    f.PROPERTY_TYPE: 0.15,
    f.ENGAGEMENT: 0.07,
    f.PRICE_BAND: 0.15,
}

# Where users are, what they look at (and so the price level of what they look at) and how
# they respond to it: a shift of these is a change of population, which a run started by a
# drift or quality alert retrains on instead of stopping (docs/monitoring.md). Users who
# moved engage differently with a model that has not learnt them yet, so the engagement mix
# moves with them. price_band (lead prices against their own region's median: a unit change)
# and the regional median shift (each region against itself: a unit change in the market
# feed) do not move when users move, and always block.
DEFAULT_POPULATION_FEATURES = (
    f.REGION,
    f.PROPERTY_TYPE,
    f.USER_LATITUDE,
    f.USER_LONGITUDE,
    f.LEAD_LATITUDE,
    f.LEAD_LONGITUDE,
    f.PRICE,
    f.MARKET_MEDIAN_PRICE,
    f.ENGAGEMENT,
)

# Above the largest value on clean days of six default-size synthetic sets (1.26), below
# the smallest one-day price_inflation there (1.49): docs/pipeline.md.
DEFAULT_REGIONAL_MEDIAN_SHIFT = 1.4


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExampleGenConfig(_Section):
    """Rolling window, split and negative sampling of the interaction ExampleGen."""

    window_spans: int = Field(14, ge=2, le=366)
    eval_days: int = Field(2, ge=1, le=60)
    negatives_per_positive: int = Field(4, ge=0, le=100)
    hard_fraction: float = Field(SamplingConfig.hard_fraction, ge=0.0, le=1.0)
    popularity_exponent: float = Field(SamplingConfig.popularity_exponent, ge=0.0, le=2.0)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    # The eval split's ranking protocol: each eval user's positives among this many uniform
    # negatives (the NCF protocol draws 99; 49 discriminate as well here at half the
    # Evaluator's time, docs/pipeline.md); 0 samples eval negatives like training's.
    eval_negatives: int = Field(49, ge=0, le=1000)
    # Each run leaves the user history (counts per user, lead and event type) under the
    # pipeline root for the next day's, which then reads its window instead of every span
    # (docs/pipeline.md, "Carried history"); the examples are the same either way.
    carry_history: bool = True

    @pydantic.model_validator(mode="after")
    def _eval_inside_window(self) -> ExampleGenConfig:
        if self.eval_days >= self.window_spans:
            raise ValueError(
                f"eval_days ({self.eval_days}) must be smaller than window_spans "
                f"({self.window_spans}) so that both splits have data"
            )
        return self


class DriftConfig(_Section):
    """Span-to-span drift and training/serving skew thresholds (TFDV)."""

    enabled: bool = True
    numeric: dict[str, Annotated[float, Field(gt=0.0, le=1.0)]] = Field(
        default_factory=lambda: dict(DEFAULT_NUMERIC_DRIFT)
    )
    categorical: dict[str, Annotated[float, Field(gt=0.0, le=1.0)]] = Field(
        default_factory=lambda: dict(DEFAULT_CATEGORICAL_DRIFT)
    )
    # The worst region's |d log market median price| x sqrt(inventory) from one span to the
    # next (docs/pipeline.md); null turns the measurement off.
    regional_median_shift: float | None = Field(DEFAULT_REGIONAL_MEDIAN_SHIFT, gt=0.0, le=100.0)
    # Serving logs the skew check compares with training; by default the ones `aiqleads events
    # ingest` writes into the data set (aiqleads.layout.SERVING_LOGS_DIR), if any.
    serving_log_dir: str | None = None
    max_serving_records: int = Field(200_000, ge=1, le=10_000_000)
    # Shifts of these do not stop a run started by an alert (trigger_reason drift:/quality:).
    population_features: tuple[str, ...] = DEFAULT_POPULATION_FEATURES

    @pydantic.model_validator(mode="after")
    def _disjoint(self) -> DriftConfig:
        both = sorted(set(self.numeric) & set(self.categorical))
        if both:
            raise ValueError(f"features {both} are both numeric and categorical")
        compared = set(self.numeric) | set(self.categorical)
        if "population_features" not in self.model_fields_set:
            # The default list applies to the features this config compares.
            kept = tuple(x for x in DEFAULT_POPULATION_FEATURES if x in compared)
            object.__setattr__(self, "population_features", kept)  # frozen model
        unknown = sorted(set(self.population_features) - compared)
        if unknown:
            raise ValueError(
                f"population_features {unknown} are not compared (numeric/categorical)"
            )
        return self


class TrainerConfig(_Section):
    """Trainer steps and model hyper-parameters passed to ``run_fn`` as ``custom_config``."""

    train_steps: int = Field(2000, ge=1, le=10_000_000)
    eval_steps: int = Field(200, ge=1, le=1_000_000)
    hyperparameters: dict[str, int | float | str | bool] = Field(default_factory=dict)

    @pydantic.field_validator("hyperparameters")
    @classmethod
    def _known_and_in_range(cls, value: dict[str, Any]) -> dict[str, Any]:
        # Checked here, when the config loads, not minutes into a run when the Trainer starts.
        ModelConfig.from_custom_config(value, strict=True)
        return value


class EvaluatorConfig(_Section):
    """TFMA gate: value thresholds and the change thresholds against the latest blessed
    model, calibrated on the baselines (docs/pipeline.md, "Evaluator")."""

    top_k: int = Field(10, ge=1, le=1000)
    min_auc: float = Field(0.6, ge=0.0, le=1.0)
    # Between per-region popularity (0.71) and the trained model (0.92) on the smoke world's
    # eval split; docs/benchmarks.md, "Offline gate".
    min_ndcg: float = Field(0.8, ge=0.0, le=1.0)
    max_auc_drop: float = Field(0.02, ge=0.0, le=1.0)
    # Above the run-to-run change of the trained model (0.01), far below a broken one's.
    max_ndcg_drop: float = Field(0.03, ge=0.0, le=1.0)


class SmokeConfig(_Section):
    """In-process serving smoke check before the push."""

    latency_budget_ms: float = Field(20.0, gt=0.0, le=10_000.0)


class PipelineConfig(_Section):
    """Everything a run needs; the orchestrator-specific parts (Beam args, metadata) too."""

    name: str = Field("aiqleads-recommender", pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    data_root: str = "runs/data/default"
    runs_dir: str = DEFAULT_RUNS_DIR
    serving_model_dir: str = f"runs/serving_models/{MODEL_NAME}"
    as_of: dt.date | None = None
    # Why this run starts: schedule, manual, or drift:<alert> / quality:<alert> from the
    # retraining trigger; recorded with the drift check in MLMD, and an alert's reason lets
    # population shifts through (docs/monitoring.md).
    trigger_reason: str = Field("", max_length=500)
    enable_cache: bool = True
    beam_args: tuple[str, ...] = ("--direct_running_mode=in_memory", "--direct_num_workers=1")
    example_gen: ExampleGenConfig = ExampleGenConfig()
    drift: DriftConfig = DriftConfig()
    trainer: TrainerConfig = TrainerConfig()
    evaluator: EvaluatorConfig = EvaluatorConfig()
    smoke: SmokeConfig = SmokeConfig()

    def path(self, value: str) -> pathlib.Path:
        """A configured path, absolute (relative ones are under the repository root)."""
        p = pathlib.Path(value).expanduser()
        return p if p.is_absolute() else REPO_ROOT / p

    @property
    def data_path(self) -> pathlib.Path:
        return self.path(self.data_root)

    @property
    def serving_logs_path(self) -> pathlib.Path:
        """Where the skew check reads serving logs (absent: the check has nothing to compare)."""
        if self.drift.serving_log_dir:
            return self.path(self.drift.serving_log_dir)
        return self.data_path / layout.SERVING_LOGS_DIR

    @property
    def pipeline_root(self) -> pathlib.Path:
        return self.path(self.runs_dir) / "pipelines" / self.name

    @property
    def metadata_path(self) -> pathlib.Path:
        return self.path(self.runs_dir) / "metadata" / f"{self.name}.sqlite"

    @property
    def serving_model_path(self) -> pathlib.Path:
        return self.path(self.serving_model_dir)

    def with_overrides(self, **changes: Any) -> PipelineConfig:
        """A validated copy with top-level fields replaced (e.g. ``data_root``)."""
        return settings_io.validate(
            PipelineConfig, {**self.model_dump(), **changes}, WHAT, "overrides"
        )


def load_config(
    path: str | pathlib.Path | None = None, environ: dict[str, str] | None = None
) -> PipelineConfig:
    """Defaults, then the YAML file at ``path`` (if any), then environment overrides."""
    return settings_io.load(PipelineConfig, WHAT, path, env_prefix=ENV_PREFIX, environ=environ)
