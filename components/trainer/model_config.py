"""The recommender's hyper-parameters, without TensorFlow: the pipeline config checks
``trainer.hyperparameters`` against them when it loads, before a run starts."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from aiqleads import settings_io

# Closed ranges that a setting must lie in (learning_rate is open at both ends).
_BOUNDS: dict[str, tuple[float, float]] = {
    "embedding_dim": (1, 4096),
    "id_embedding_dim": (1, 4096),
    "hidden_units": (1, 4096),
    "batch_size": (1, 4096),
    "retrieval_loss_weight": (0.0, 100.0),
    "l2": (0.0, 1.0),
    "shortlist": (1, 100_000),
    "geo_shortlist": (0, 100_000),
    "sampling_prior_weight": (0.0, 1.0),
    "seed": (0, 2**31 - 1),
}


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters (``custom_config`` keys of the same names override them)."""

    embedding_dim: int = 32
    id_embedding_dim: int = 32
    # Tuned with benchmarks/quality.py on the default synthetic set (docs/model.md).
    hidden_units: int = 128
    learning_rate: float = 0.002
    batch_size: int = 256
    retrieval_loss_weight: float = 0.5
    l2: float = 1e-4
    # `recommend` re-scores with the full model the best `shortlist` leads by retrieval score
    # plus the `geo_shortlist` nearest to the user's location (docs/model.md).
    shortlist: int = 50
    geo_shortlist: int = 50
    # `recommend` adds this times log(negatives_per_positive * p_negative) to its logits: the
    # sampling-bias correction (docs/model.md); 0 turns it off.
    sampling_prior_weight: float = 0.5
    seed: int = 7

    @classmethod
    def names(cls) -> list[str]:
        return [fl.name for fl in dataclasses.fields(cls)]

    @classmethod
    def from_custom_config(
        cls, custom: Mapping[str, Any] | None, strict: bool = False
    ) -> ModelConfig:
        """The defaults overridden by the keys of ``custom`` that name a field; with
        ``strict``, any other key is an error too. Raises ValueError naming the setting."""
        custom = custom or {}
        names = cls.names()
        if strict and (unknown := sorted(set(custom) - set(names))):
            raise ValueError(f"unknown model settings {unknown}; known: {names}")
        values = {
            name: settings_io.as_number(custom[name], getattr(cls, name), name)
            for name in names
            if name in custom
        }
        cfg = cls(**values)
        for name, (low, high) in _BOUNDS.items():
            if not low <= getattr(cfg, name) <= high:
                raise ValueError(f"{name} must be in [{low}, {high}], got {getattr(cfg, name)}")
        if not 0 < cfg.learning_rate < 1:
            raise ValueError(f"learning_rate must be in (0, 1), got {cfg.learning_rate}")
        return cfg
