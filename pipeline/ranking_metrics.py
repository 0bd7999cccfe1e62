"""TFMA metrics for lead ranking: top-k hit rate, precision and recall per user, and AUC of
"engaged vs not" on the graded engagement label.

TFMA ships NDCG but no per-query hit rate/precision/recall, and its binary metrics expect a
0/1 label; the label here is 0..4 (``transforms.features.ENGAGEMENT``), engaged meaning > 0.
Query metrics need ``query_key`` (the user id) in their ``MetricsSpec``: TFMA then hands each
combiner all eval examples of one user at once. The per-user formulas are the ones of the
quality benchmark (`components.baselines.metrics`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import apache_beam as beam
import numpy as np
from tensorflow_model_analysis.metrics import metric_types, metric_util
from tensorflow_model_analysis.proto import config_pb2
from tensorflow_model_analysis.utils import util

from components.baselines import metrics as formulas
from transforms import features as f

HIT_RATE = "hit_rate"
PRECISION = "precision"
RECALL = "recall"
AUC_NAME = "engagement_auc"


def metric_name(kind: str, top_k: int) -> str:
    """``hit_rate@10`` and friends: the names the evaluation table and thresholds use."""
    return f"{kind}@{top_k}"


@dataclass(frozen=True)
class _Scored:
    """Where a combiner reads an example's scores, weight and graded label from."""

    eval_config: config_pb2.EvalConfig | None
    model_name: str
    output_name: str
    example_weighted: bool
    gain_key: str

    def read(self, element) -> tuple[np.ndarray, np.ndarray, float]:
        """One user's (or example's) scores, gains and example weight."""
        _, predictions, weight = next(
            metric_util.to_label_prediction_example_weight(
                element,
                eval_config=self.eval_config,
                model_name=self.model_name,
                output_name=self.output_name,
                example_weighted=self.example_weighted,
                flatten=False,
                require_single_example_weight=True,
            )
        )
        scores = np.asarray(predictions, dtype=float).reshape(-1)
        gains = util.get_by_keys(element.combined_features, [self.gain_key]).reshape(-1)
        if gains.size != scores.size:
            raise ValueError(f"{self.gain_key} has {gains.size} values for {scores.size} scores")
        return scores, gains, float(weight)


class _TopKCombiner(beam.CombineFn):
    """Sums per-user hit, precision and recall at k over users with a relevant lead."""

    def __init__(self, keys, scored: _Scored, top_k: int):
        self._keys = keys  # hit, precision, recall
        self._scored = scored
        self._top_k = top_k

    def create_accumulator(self) -> list[float]:
        return [0.0, 0.0, 0.0, 0.0]  # hit, precision, recall, users

    def add_input(self, acc: list[float], element) -> list[float]:
        scores, gains, weight = self._scored.read(element)
        relevant = gains > 0
        n_relevant = int(relevant.sum())
        if n_relevant == 0 or weight <= 0:
            return acc
        order = np.argsort(-scores, kind="stable")
        found = formulas.relevant_in_top_k(relevant[order], self._top_k)
        acc[0] += weight * formulas.hit_rate(found)
        acc[1] += weight * formulas.precision(found, self._top_k)
        acc[2] += weight * formulas.recall(found, n_relevant)
        acc[3] += weight
        return acc

    def merge_accumulators(self, accumulators: Iterable[list[float]]) -> list[float]:
        total = [0.0, 0.0, 0.0, 0.0]
        for acc in accumulators:
            total = [a + b for a, b in zip(total, acc, strict=True)]
        return total

    def extract_output(self, acc: list[float]) -> dict:
        users = acc[3]
        return {
            key: (acc[i] / users if users else float("nan")) for i, key in enumerate(self._keys)
        }


def _top_k_ranking(
    gain_key: str = f.ENGAGEMENT,
    top_k: int = 10,
    name: str = "top_k_ranking",
    eval_config: config_pb2.EvalConfig | None = None,
    model_names: list[str] | None = None,
    output_names: list[str] | None = None,
    example_weighted: bool = False,
    query_key: str = "",
) -> metric_types.MetricComputations:
    if not query_key:
        raise ValueError("TopKRanking needs query_key (the user id) in its MetricsSpec")
    computations = []
    for model_name in model_names or [""]:
        for output_name in output_names or [""]:
            keys = [
                metric_types.MetricKey(
                    metric_name(kind, top_k),
                    model_name=model_name,
                    output_name=output_name,
                    example_weighted=example_weighted,
                )
                for kind in (HIT_RATE, PRECISION, RECALL)
            ]
            computations.append(
                metric_types.MetricComputation(
                    keys=keys,
                    preprocessors=[
                        metric_types.CombinedFeaturePreprocessor(feature_keys=[query_key, gain_key])
                    ],
                    combiner=_TopKCombiner(
                        keys,
                        _Scored(eval_config, model_name, output_name, example_weighted, gain_key),
                        top_k,
                    ),
                )
            )
    return computations


class TopKRanking(metric_types.Metric):
    """hit_rate@k, precision@k and recall@k per user (relevant: ``gain_key`` > 0)."""

    def __init__(self, gain_key: str = f.ENGAGEMENT, top_k: int = 10, name: str = "top_k_ranking"):
        super().__init__(_top_k_ranking, gain_key=gain_key, top_k=top_k, name=name)


metric_types.register_metric(TopKRanking)


def auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Exact ROC AUC with ties counted half (Mann-Whitney U)."""
    scores = np.asarray(scores, dtype=float)
    positive = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=float)
    sorted_scores = scores[order]
    # Average ranks over ties.
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


AUC_BINS = 10_000  # score bins of the AUC's histogram, uniform in the score's logit
AUC_LOGIT_RANGE = 16.0  # logits beyond +-16 (float32 probabilities' saturation) share an end bin
AUC_BOUND_NAME = f"{AUC_NAME}_error_bound"


@dataclass(frozen=True)
class HistogramAUC:
    """ROC AUC from per-bin counts of engaged and not engaged scores: bounded memory
    (two arrays of ``bins`` counts), mergeable in any order, on any runner.

    The bins are uniform in the score's logit over [-16, 16], so the saturated
    probabilities a confident model gives (near 0 and 1) spread over many bins instead of
    piling into the end ones. Pairs in different bins are ordered exactly (the logit is
    monotone); a pair sharing a bin counts half, as a tie does. The error against the exact
    AUC is therefore at most half the share of the positive-negative pairs that share a bin
    (``error_bound``, computed from the counts), and zero for scores that take at most one
    value per bin. Scores are probabilities: values outside [0, 1] go to the end bins.
    """

    positive: np.ndarray  # int64[bins]
    negative: np.ndarray

    @classmethod
    def empty(cls, bins: int = AUC_BINS) -> HistogramAUC:
        return cls(np.zeros(bins, np.int64), np.zeros(bins, np.int64))

    def add(self, scores: np.ndarray, engaged: np.ndarray) -> HistogramAUC:
        bins = len(self.positive)
        p = np.clip(np.asarray(scores, dtype=np.float64), 0.0, 1.0)
        with np.errstate(divide="ignore"):
            logit = np.log(p) - np.log1p(-p)  # -inf at 0, +inf at 1
        unit = (np.clip(logit, -AUC_LOGIT_RANGE, AUC_LOGIT_RANGE) + AUC_LOGIT_RANGE) / (
            2 * AUC_LOGIT_RANGE
        )
        index = np.clip((unit * bins).astype(np.int64), 0, bins - 1)
        engaged = np.asarray(engaged, dtype=bool)
        return HistogramAUC(
            self.positive + np.bincount(index[engaged], minlength=bins),
            self.negative + np.bincount(index[~engaged], minlength=bins),
        )

    def merge(self, other: HistogramAUC) -> HistogramAUC:
        return HistogramAUC(self.positive + other.positive, self.negative + other.negative)

    @property
    def pairs(self) -> float:
        return float(self.positive.sum()) * float(self.negative.sum())

    def value(self) -> float:
        if self.pairs == 0:
            return float("nan")
        below = np.cumsum(self.negative) - self.negative  # negatives in lower bins
        wins = self.positive * (below + 0.5 * self.negative)
        return float(wins.sum() / self.pairs)

    def error_bound(self) -> float:
        if self.pairs == 0:
            return float("nan")
        return float(0.5 * (self.positive * self.negative).sum() / self.pairs)


class _AUCCombiner(beam.CombineFn):
    """A `HistogramAUC` of (score, engaged): memory bounded by the bins, not the eval set."""

    def __init__(self, key, bound_key, scored: _Scored):
        self._key = key
        self._bound_key = bound_key
        self._scored = scored

    def create_accumulator(self) -> HistogramAUC:
        return HistogramAUC.empty()

    def add_input(self, acc: HistogramAUC, element) -> HistogramAUC:
        scores, gains, _ = self._scored.read(element)
        return acc.add(scores, gains > 0)

    def merge_accumulators(self, accumulators: Iterable[HistogramAUC]) -> HistogramAUC:
        total = HistogramAUC.empty()
        for acc in accumulators:
            total = total.merge(acc)
        return total

    def extract_output(self, acc: HistogramAUC) -> dict:
        return {self._key: acc.value(), self._bound_key: acc.error_bound()}


def _engagement_auc(
    gain_key: str = f.ENGAGEMENT,
    name: str = AUC_NAME,
    eval_config: config_pb2.EvalConfig | None = None,
    model_names: list[str] | None = None,
    output_names: list[str] | None = None,
) -> metric_types.MetricComputations:
    computations = []
    for model_name in model_names or [""]:
        for output_name in output_names or [""]:
            key = metric_types.MetricKey(name, model_name=model_name, output_name=output_name)
            bound = metric_types.MetricKey(
                f"{name}_error_bound", model_name=model_name, output_name=output_name
            )
            computations.append(
                metric_types.MetricComputation(
                    keys=[key, bound],
                    preprocessors=[
                        metric_types.CombinedFeaturePreprocessor(feature_keys=[gain_key])
                    ],
                    combiner=_AUCCombiner(
                        key, bound, _Scored(eval_config, model_name, output_name, False, gain_key)
                    ),
                )
            )
    return computations


class EngagementAUC(metric_types.Metric):
    """ROC AUC of the score for "engaged" (``gain_key`` > 0) against sampled negatives, from
    a bounded histogram (`HistogramAUC`), with its error bound as a second metric."""

    def __init__(self, gain_key: str = f.ENGAGEMENT, name: str = AUC_NAME):
        super().__init__(_engagement_auc, gain_key=gain_key, name=name)


metric_types.register_metric(EngagementAUC)
