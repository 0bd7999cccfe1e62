"""The sampling-bias correction in the exported graph: `SamplingPrior` as lookups.

`recommend` adds ``w * (log p_negative + log negatives_per_positive)`` of each (user, lead)
to the full model's logit (``w`` the ``sampling_prior_weight``): the classifier learned
engagement against ExampleGen's negatives, and ranking needs it against nothing
(`sampling_prior.py` says why; `SamplingPrior.log_propensity` is the NumPy reference).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from components.trainer.sampling_prior import MIN_PROPENSITY, SamplingPrior


class SamplingCorrection(tf.Module):
    """Constants of the correction; none (a zero shift) without a prior or with weight 0."""

    def __init__(self, prior: SamplingPrior | None, weight: float) -> None:
        super().__init__()
        self.corrected = prior is not None and weight > 0
        if not self.corrected:
            return
        self.weight = float(weight)
        self.lead_region = tf.constant(prior.lead_region, tf.int64)
        self.region_rate = tf.constant(prior.region_rate, tf.float32)
        self.popular = tf.constant(prior.popular, tf.float32)
        self.n_regions = prior.n_regions
        self.log_negatives = prior.log_negatives
        keys = np.concatenate([[-1], prior.share_keys()]).astype(np.int64)  # never empty
        values = np.concatenate([[0.0], prior.share]).astype(np.float32)
        self.share_table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(keys), tf.constant(values)),
            default_value=0.0,
        )

    def log_propensity(self, user_rows: tf.Tensor, lead_rows: tf.Tensor) -> tf.Tensor:
        """The logit shift: weight x (``log p_negative`` + ``log negatives_per_positive``)
        for users ``user_rows`` (-1: unknown) x catalogue rows, float32."""
        if not self.corrected:
            return tf.zeros_like(lead_rows, tf.float32)
        region = tf.gather(self.lead_region, lead_rows)
        share = self.share_table.lookup(user_rows * self.n_regions + region)
        share = tf.where(user_rows >= 0, share, tf.zeros_like(share))
        p = tf.gather(self.popular, lead_rows) + tf.gather(self.region_rate, lead_rows) * share
        log_p = tf.math.log(tf.maximum(p, MIN_PROPENSITY)) + self.log_negatives
        return self.weight * log_p
