"""The recommender: a user tower, a lead tower and a ranking head over transformed features.

- User tower: user id embedding (vocabulary + OOV bucket) and behaviour aggregates -> u.
- Lead tower: lead/region/type embeddings, hashed geo cells (two resolutions and cell x
  type), price/market/hotspot/density numbers -> l, plus a per-lead bias b.
- Retrieval logit: ``u . l + b`` (what ``recommend`` uses to shortlist the catalogue).
- Ranking head: an MLP over ``[u, l, u * l, crosses]`` (distance, price fit, the user's
  history with the lead, the user's shares of the lead's type and region) added to the
  retrieval logit: the final score is ``sigmoid(u . l + b + head)``.

Both logits are trained (binary cross-entropy, engagement-weighted), so the dot product is
a meaningful retrieval score on its own. Keras 2 (`tf_keras`), as TF Transform uses.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import tensorflow as tf
import tf_keras as keras

from components.trainer.model_config import ModelConfig
from transforms import features as f
from transforms import preprocessing

SCORE = "score"  # output: final logit
RETRIEVAL = "retrieval"  # output: dot-product logit


@dataclasses.dataclass(frozen=True)
class VocabSizes:
    """Input dimensions of the id embeddings (vocabulary sizes including OOV buckets)."""

    users: int
    leads: int
    regions: int
    property_types: int

    @classmethod
    def from_transform_output(cls, tft_output: Any) -> VocabSizes:
        def size(name: str) -> int:
            return tft_output.vocabulary_size_by_name(name) + preprocessing.OOV_BUCKETS

        return cls(size(f.USER_ID), size(f.LEAD_ID), size(f.REGION), size(f.PROPERTY_TYPE))


def _int_input(name: str) -> keras.Input:
    return keras.Input(shape=(), name=name, dtype=tf.int64)


def _float_input(name: str) -> keras.Input:
    return keras.Input(shape=(), name=name, dtype=tf.float32)


def _embed(x, n: int, dim: int, name: str, reg) -> tf.Tensor:
    return keras.layers.Embedding(n, dim, name=name, embeddings_regularizer=reg)(x)


def _numeric(inputs: dict, keys) -> tf.Tensor:
    return keras.layers.Concatenate(axis=1)([tf.expand_dims(inputs[k], 1) for k in keys])


def build_user_tower(vocab: VocabSizes, cfg: ModelConfig) -> keras.Model:
    reg = keras.regularizers.l2(cfg.l2)
    inputs = {f.T_USER_INDEX: _int_input(f.T_USER_INDEX)}
    inputs.update({k: _float_input(k) for k in f.T_USER_NUMERIC})
    x = keras.layers.Concatenate(axis=1)(
        [
            _embed(inputs[f.T_USER_INDEX], vocab.users, cfg.id_embedding_dim, "user_id_emb", reg),
            _numeric(inputs, f.T_USER_NUMERIC),
        ]
    )
    x = keras.layers.Dense(cfg.hidden_units, activation="relu", kernel_regularizer=reg)(x)
    u = keras.layers.Dense(cfg.embedding_dim, kernel_regularizer=reg, name="user_embedding")(x)
    return keras.Model(inputs, u, name="user_tower")


def build_lead_tower(vocab: VocabSizes, cfg: ModelConfig) -> keras.Model:
    reg = keras.regularizers.l2(cfg.l2)
    ids = (f.T_LEAD_INDEX, f.T_REGION_INDEX, f.T_PROPERTY_TYPE_INDEX, *f.T_BUCKET_FEATURES)
    inputs = {k: _int_input(k) for k in ids}
    inputs.update({k: _float_input(k) for k in f.T_LEAD_NUMERIC})
    sizes = {
        f.T_LEAD_INDEX: (vocab.leads, cfg.id_embedding_dim),
        f.T_REGION_INDEX: (vocab.regions, 8),
        f.T_PROPERTY_TYPE_INDEX: (vocab.property_types, 4),
        f.T_FINE_CELL: (preprocessing.FINE_CELL_BUCKETS, 16),
        f.T_COARSE_CELL: (preprocessing.COARSE_CELL_BUCKETS, 8),
        f.T_CELL_X_TYPE: (preprocessing.CELL_X_TYPE_BUCKETS, 8),
    }
    parts = [_embed(inputs[k], n, d, f"{k}_emb", reg) for k, (n, d) in sizes.items()]
    x = keras.layers.Concatenate(axis=1)([*parts, _numeric(inputs, f.T_LEAD_NUMERIC)])
    x = keras.layers.Dense(cfg.hidden_units, activation="relu", kernel_regularizer=reg)(x)
    emb = keras.layers.Dense(cfg.embedding_dim, kernel_regularizer=reg, name="lead_embedding")(x)
    bias = keras.layers.Dense(1, name="lead_bias")(x)
    return keras.Model(inputs, {"embedding": emb, "bias": bias[:, 0]}, name="lead_tower")


def build_head(cfg: ModelConfig) -> keras.Model:
    """Ranking head: MLP logit over the two embeddings, their product and the crosses."""
    reg = keras.regularizers.l2(cfg.l2)
    u = keras.Input(shape=(cfg.embedding_dim,), name="user_embedding")
    lead = keras.Input(shape=(cfg.embedding_dim,), name="lead_embedding")
    crosses = {k: _float_input(k) for k in f.T_CROSS_NUMERIC}
    x = keras.layers.Concatenate(axis=1)([u, lead, u * lead, _numeric(crosses, f.T_CROSS_NUMERIC)])
    x = keras.layers.Dense(cfg.hidden_units, activation="relu", kernel_regularizer=reg)(x)
    x = keras.layers.Dense(cfg.hidden_units // 2 or 1, activation="relu", kernel_regularizer=reg)(x)
    logit = keras.layers.Dense(1)(x)[:, 0]
    return keras.Model({"user": u, "lead": lead, **crosses}, logit, name="ranking_head")


class Recommender(keras.Model):
    """The full model on transformed features; the towers are reachable for export."""

    def __init__(self, vocab: VocabSizes, cfg: ModelConfig, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cfg = cfg
        self.user_tower = build_user_tower(vocab, cfg)
        self.lead_tower = build_lead_tower(vocab, cfg)
        self.head = build_head(cfg)
        self.global_bias = self.add_weight(name="global_bias", shape=(), initializer="zeros")

    def logits(
        self,
        u: tf.Tensor,
        lead_embedding: tf.Tensor,
        lead_bias: tf.Tensor,
        crosses: dict[str, tf.Tensor],
        training: bool = False,
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """(score, retrieval) logits ``[B]`` from the towers' outputs and the crosses.

        The export calls this with precomputed lead-tower outputs, so `recommend` re-scores
        its shortlist without running the lead tower or Transform per candidate.
        """
        retrieval = tf.reduce_sum(u * lead_embedding, axis=1) + lead_bias + self.global_bias
        head_in = {"user": u, "lead": lead_embedding}
        head_in.update({k: crosses[k] for k in f.T_CROSS_NUMERIC})
        return retrieval + self.head(head_in, training=training), retrieval

    def call(self, features: dict[str, tf.Tensor], training: bool = False) -> dict[str, tf.Tensor]:
        u = self.user_tower(
            {k: features[k] for k in self.user_tower.input_names}, training=training
        )
        lead = self.lead_tower(
            {k: features[k] for k in self.lead_tower.input_names}, training=training
        )
        score, retrieval = self.logits(u, lead["embedding"], lead["bias"], features, training)
        # [B, 1]: Keras losses reduce over the last axis.
        return {SCORE: score[:, None], RETRIEVAL: retrieval[:, None]}


def build_model(vocab: VocabSizes, cfg: ModelConfig) -> Recommender:
    """A compiled `Recommender` (engagement-weighted BCE on both logits)."""
    keras.utils.set_random_seed(cfg.seed)
    model = Recommender(vocab, cfg)
    bce = keras.losses.BinaryCrossentropy(from_logits=True)
    model.compile(
        optimizer=keras.optimizers.Adam(cfg.learning_rate),
        loss={SCORE: bce, RETRIEVAL: bce},
        loss_weights={SCORE: 1.0, RETRIEVAL: cfg.retrieval_loss_weight},
        weighted_metrics={SCORE: [keras.metrics.AUC(from_logits=True, name="auc")]},
    )
    return model
