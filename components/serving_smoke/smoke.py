"""Smoke checks of a candidate SavedModel, as the model servers will call it.

1. Both signatures exist (``serving_default`` and ``recommend``).
2. ``recommend`` canaries: known users (kept in the model as ``canary_user_ids``), an
   unknown user with and without a location; every row has ``max(k)`` distinct lead ids,
   finite scores in [0, 1], best first.
3. ``serving_default`` canaries (``canary_examples``): one finite score in [0, 1] each.
4. Latency: ``latency_requests`` single-user ``recommend`` calls in process after a
   warm-up; p95 must be within ``latency_budget_ms``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time

import numpy as np

from transforms import features as f

WARMUP_CALLS = 5
UNKNOWN_USER = "smoke-unknown-user"
SERVING_DEFAULT = "serving_default"  # tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY
SERVING_DEFAULT_INPUT = "examples"  # serialized tf.Examples in, one score per example out
SERVING_DEFAULT_OUTPUT = "score"


@dataclasses.dataclass
class SmokeReport:
    passed: bool
    reasons: list[str] = dataclasses.field(default_factory=list)
    recommend_p50_ms: float | None = None
    recommend_p95_ms: float | None = None
    latency_budget_ms: float | None = None
    canary_rows: int = 0

    def summary(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.summary(), indent=2)


def _check_recommend_rows(ids: np.ndarray, scores: np.ndarray, k: int) -> list[str]:
    problems = []
    if ids.ndim != 2 or ids.shape != scores.shape or ids.shape[1] != k:
        return [f"recommend returned shapes {ids.shape}/{scores.shape}, expected (B, {k})"]
    for i, (row_ids, row_scores) in enumerate(zip(ids, scores, strict=True)):
        if len(set(row_ids.tolist())) != len(row_ids) or any(not x for x in row_ids):
            problems.append(f"recommend row {i}: empty or duplicate lead ids")
        if not np.all(np.isfinite(row_scores)) or row_scores.min() < 0 or row_scores.max() > 1:
            problems.append(f"recommend row {i}: scores outside [0, 1]")
        elif np.any(np.diff(row_scores) > 1e-6):
            problems.append(f"recommend row {i}: scores not in descending order")
    return problems


def _recommend_call(fn, users, lat, lon, k):
    import tensorflow as tf

    return fn(
        user_id=tf.constant(users, tf.string),
        latitude=tf.constant(lat, tf.float32),
        longitude=tf.constant(lon, tf.float32),
        k=tf.constant([k] * len(users), tf.int32),
    )


def check_saved_model(
    model_dir: str, latency_budget_ms: float, latency_requests: int = 200, top_k: int = 10
) -> SmokeReport:
    """Load ``model_dir`` and run every check; never raises for a bad model."""
    import tensorflow as tf

    report = SmokeReport(passed=False, latency_budget_ms=latency_budget_ms)
    try:
        loaded = tf.saved_model.load(model_dir)
    except Exception as e:  # noqa: BLE001 - any load failure means "do not push"
        report.reasons.append(f"SavedModel does not load: {type(e).__name__}: {e}"[:500])
        return report
    missing = {SERVING_DEFAULT, f.RECOMMEND_SIGNATURE} - set(loaded.signatures)
    if missing:
        report.reasons.append(f"missing signatures: {sorted(missing)}")
        return report
    recommend = loaded.signatures[f.RECOMMEND_SIGNATURE]
    known = [u.decode() for u in getattr(loaded, "canary_user_ids", tf.constant([])).numpy()]
    users = known + [UNKNOWN_USER, UNKNOWN_USER]
    nan = math.nan
    # The second unknown user sends a location (any valid point exercises the fallback).
    lat = [nan] * len(known) + [nan, 0.0]
    lon = [nan] * len(known) + [nan, 0.0]
    try:
        out = _recommend_call(recommend, users, lat, lon, top_k)
        ids = out[f.RECOMMEND_OUTPUT_LEAD_IDS].numpy()
        scores = out[f.RECOMMEND_OUTPUT_SCORES].numpy()
        k = min(top_k, ids.shape[1]) if ids.ndim == 2 else top_k
        report.reasons += _check_recommend_rows(ids, scores, k)
        report.canary_rows = len(users)
        examples = getattr(loaded, "canary_examples", None)
        if examples is not None and int(tf.size(examples)) > 0:
            serve = loaded.signatures[SERVING_DEFAULT]
            score = serve(**{SERVING_DEFAULT_INPUT: examples})[SERVING_DEFAULT_OUTPUT].numpy()
            if score.shape != (int(tf.size(examples)),):
                report.reasons.append(f"serving_default returned shape {score.shape}")
            elif not np.all(np.isfinite(score)) or score.min() < 0 or score.max() > 1:
                report.reasons.append("serving_default scores outside [0, 1]")
        else:
            report.reasons.append("the model has no canary_examples for serving_default")
    except Exception as e:  # noqa: BLE001 - a failing canary means "do not push"
        report.reasons.append(f"canary request failed: {type(e).__name__}: {e}"[:500])
        return report

    who = (known or [UNKNOWN_USER])[0]
    for _ in range(WARMUP_CALLS):
        _recommend_call(recommend, [who], [nan], [nan], top_k)
    times = []
    for i in range(latency_requests):
        user = (known or [UNKNOWN_USER])[i % max(len(known), 1)]
        start = time.perf_counter()
        _recommend_call(recommend, [user], [nan], [nan], top_k)
        times.append((time.perf_counter() - start) * 1000.0)
    report.recommend_p50_ms = float(np.percentile(times, 50))
    report.recommend_p95_ms = float(np.percentile(times, 95))
    if report.recommend_p95_ms > latency_budget_ms:
        report.reasons.append(
            f"recommend p95 {report.recommend_p95_ms:.1f} ms exceeds the budget "
            f"{latency_budget_ms:.1f} ms"
        )
    report.passed = not report.reasons
    return report
