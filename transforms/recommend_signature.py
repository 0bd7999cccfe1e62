"""The `recommend` signature's inputs as TensorSpecs: what every exported model declares.

The Trainer's model and the baselines' (regional popularity, item-item CF) serve the same
`recommend` signature, so that the gateways and the model servers ask each of them the same
way; the names are `features.RECOMMEND_INPUT_*`, the contract serving sends.
"""

from __future__ import annotations

import tensorflow as tf

from transforms import features as f

RECOMMEND_INPUT_SPECS = (
    tf.TensorSpec([None], tf.string, name=f.RECOMMEND_INPUT_USER_ID),
    tf.TensorSpec([None], tf.float32, name=f.RECOMMEND_INPUT_LATITUDE),
    tf.TensorSpec([None], tf.float32, name=f.RECOMMEND_INPUT_LONGITUDE),
    tf.TensorSpec([None], tf.int32, name=f.RECOMMEND_INPUT_K),
)
"""``user_id``, ``latitude``, ``longitude`` and ``k``, each ``[B]``; `recommend_online`
takes these first, then the online store's inputs."""
