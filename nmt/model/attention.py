"""Global attention over the encoder outputs (Luong et al., 2015; Bahdanau et al., 2015).

Scores: "dot" q.m, "general" q.(W m), "bahdanau" v.tanh(W_q q + W_m m). The memory-side
projection (keys) depends only on the source, so it is computed once per sentence and reused at
every decoding step.

Shapes: B batch, T_q query time, T_s source time, H hidden.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

SCORES = ("dot", "general", "bahdanau")
_MASKED = -1e9


@keras.saving.register_keras_serializable(package="nmt")
class Attention(keras.layers.Layer):
    """Scores queries against the source memory and returns the weighted context.

    Args:
        units: H, the size of queries and memory vectors.
        score: "dot", "general" or "bahdanau".
    """

    def __init__(self, units: int, score: str = "general", **kwargs):
        super().__init__(**kwargs)
        if score not in SCORES:
            raise ValueError(f"`score` must be one of {SCORES}, got {score!r}")
        self.units = units
        self.score = score
        self.memory_projection = (
            keras.layers.Dense(units, use_bias=False, name="memory_projection")
            if score != "dot"
            else None
        )
        if score == "bahdanau":
            self.query_projection = keras.layers.Dense(
                units, use_bias=False, name="query_projection"
            )
            self.energy = keras.layers.Dense(1, use_bias=False, name="energy")

    def build(self, input_shape=None):
        if self.memory_projection is not None:
            self.memory_projection.build((None, None, self.units))
        if self.score == "bahdanau":
            self.query_projection.build((None, None, self.units))
            self.energy.build((None, None, None, self.units))
        self.built = True

    def keys(self, memory):
        """Memory-side projection [B, T_s, H], computed once per source batch."""
        return memory if self.memory_projection is None else self.memory_projection(memory)

    def call(self, query, keys, values, mask, training=False):
        """Attends with every query.

        Args:
            query: [B, T_q, H].
            keys: [B, T_s, H] from `keys()`.
            values: [B, T_s, H] encoder outputs.
            mask: [B, T_s] bool, False at source padding (gets zero weight).

        Returns:
            context [B, T_q, H] and weights [B, T_q, T_s] (rows sum to 1).
        """
        if self.score != "bahdanau" and query.shape[1] == 1 and not training:
            return self._one_step(query, keys, values, mask)
        if self.score == "bahdanau":
            q = self.query_projection(query)[:, :, None, :]  # [B, T_q, 1, H]
            scores = ops.squeeze(self.energy(ops.tanh(q + keys[:, None, :, :])), -1)
        else:
            # transpose_b: no transposed copy of the keys per decoder step, nor in the gradient
            scores = tf.matmul(query, keys, transpose_b=True)  # [B, T_q, T_s]
        scores = ops.where(mask[:, None, :], scores, _MASKED)
        # tf.nn.softmax, as ops.softmax calls it, without the warning that ops.softmax prints
        # ("Did you mean to use a sigmoid?") when every source in a batch is one piece long.
        weights = tf.nn.softmax(scores, axis=-1)
        return ops.matmul(weights, values), weights

    def _one_step(self, query, keys, values, mask):
        """`call` for one query step at inference, by multiplying and summing.

        A batched matmul would make oneDNN build and cache a primitive for every (rows, T_s)
        shape, and the search's batch shrinks as sentences finish, so `nmt translate`'s memory
        grew with the input's length (0.85 GiB at 1k lines, 1.12 at 30k). TensorFlow sums
        bfloat16 in float32, so this is as precise as the matmul. Training keeps the matmul:
        its batches come in few shapes, and the recipe results were measured with it.
        """
        scores = ops.where(mask, ops.sum(query * keys, axis=-1), _MASKED)  # [B, T_s]
        weights = tf.nn.softmax(scores, axis=-1)  # no warning for one-piece sources (`call`)
        context = ops.sum(weights[:, :, None] * values, axis=1, keepdims=True)  # [B, 1, H]
        return context, weights[:, None, :]

    def get_config(self):
        config = super().get_config()
        config.update(units=self.units, score=self.score)
        return config
