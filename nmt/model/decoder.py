"""Attentional LSTM decoder (Luong et al., 2015) with residual stacking (Wu et al., 2016).

At step t: x_t = [embed(y_{t-1}); a_{t-1}] with input feeding, else embed(y_{t-1});
h_t = ResidualLSTMStack(x_t); c_t = attention(h_t, memory); a_t = tanh(W_c [c_t; h_t]);
logits_t = W_o dropout(a_t). Training runs the same maths over whole sequences: with input
feeding as a `tf.while_loop` (a_{t-1} must exist before step t), without it as whole-sequence LSTMs
and one batched attention, which is much faster. `step` does one token for the search.

Shapes: B batch, T_t target time, T_s source time, E embedding, H hidden, V target vocabulary.
"""

from __future__ import annotations

from typing import NamedTuple

import keras
import tensorflow as tf
from keras import ops

from nmt.model.attention import Attention
from nmt.model.rnn import ResidualLSTMStack, time_steps


class Memory(NamedTuple):
    """The source side as the decoder reads it at every step."""

    values: object  # [B, T_s, H] encoder outputs
    keys: object  # [B, T_s, H] attention keys, projected once
    mask: object  # [B, T_s] bool


class DecoderState(NamedTuple):
    """Everything that changes from one decoding step to the next."""

    rnn: tuple  # L (h [B, H], c [B, H]) pairs
    feed: object  # [B, H] previous attentional vector a_{t-1}


class StepWeights(NamedTuple):
    """The weights one inference step reads, cast to the compute dtype once per search.

    Under bfloat16, Keras layers would cast the whole embedding table and output matrix at
    every step (a tenth of a beam-search step on CPU).
    """

    rnn: tuple  # LayerWeights per layer (rnn.py)
    embedding: object  # [V, E]
    output_kernel: object  # [H, V]
    output_bias: object  # [V]


class StepOutput(NamedTuple):
    logits: object  # [B, V]
    state: DecoderState
    attention: object  # [B, T_s]


@keras.saving.register_keras_serializable(package="nmt")
class Decoder(keras.layers.Layer):
    """Predicts target tokens from previous tokens and the attended source.

    Args:
        vocab_size: V.
        embedding_size: E.
        hidden_size: H.
        num_layers: L.
        residual_start: first layer index with a residual connection (>= 1: layer 0's input
            is an embedding, not of size H).
        attention: "dot", "general" or "bahdanau".
        input_feeding: feed a_{t-1} (GNMT attention: c_{t-1}) to the bottom layer.
        attention_layer: "top": the top layer queries attention and a_t = tanh(W_c [c_t; h_t])
            is projected (Luong et al., 2015); "bottom": the bottom layer queries, c_t joins
            the input of every upper layer and the top layer's output is projected (GNMT,
            Wu et al., 2016, section 3); needs num_layers >= 2.
        dropout: rate on embeddings, between layers and before the output projection.
        tie_output_embedding: use the embedding matrix (transposed) as output projection.
        recurrent_dropout: rate of the variational dropout on every layer's h_{t-1} in
            teacher-forced training (`call`; rnn.py).
    """

    def __init__(
        self,
        vocab_size: int,
        embedding_size: int,
        hidden_size: int,
        num_layers: int,
        residual_start: int = 2,
        attention: str = "general",
        input_feeding: bool = True,
        dropout: float = 0.0,
        tie_output_embedding: bool = False,
        attention_layer: str = "top",
        recurrent_dropout: float = 0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if attention_layer not in ("top", "bottom"):
            raise ValueError(
                f"`attention_layer` must be 'top' or 'bottom', got {attention_layer!r}"
            )
        if attention_layer == "bottom" and num_layers < 2:
            raise ValueError(
                f"`attention_layer='bottom'` needs `num_layers` >= 2, got {num_layers}"
            )
        if tie_output_embedding and embedding_size != hidden_size:
            raise ValueError(
                "`tie_output_embedding` needs `embedding_size` == `hidden_size`, got "
                f"{embedding_size} and {hidden_size}"
            )
        self.vocab_size = vocab_size
        self.embedding_size = embedding_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.residual_start = residual_start
        self.attention_score = attention
        self.input_feeding = input_feeding
        self.dropout_rate = dropout
        self.tie_output_embedding = tie_output_embedding
        self.attention_layer = attention_layer
        self.recurrent_dropout_rate = recurrent_dropout
        self.gnmt = attention_layer == "bottom"
        self.embedding = keras.layers.Embedding(vocab_size, embedding_size, name="embedding")
        # GNMT: `rnn` is the bottom layer alone and `upper` the layers fed with the context.
        self.rnn = ResidualLSTMStack(
            hidden_size,
            1 if self.gnmt else num_layers,
            residual_start=residual_start,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            name="rnn",
        )
        self.upper = (
            ResidualLSTMStack(
                hidden_size,
                num_layers - 1,
                residual_start=residual_start,
                first_layer_index=1,
                dropout=dropout,
                context_size=hidden_size,
                recurrent_dropout=recurrent_dropout,
                name="upper",
            )
            if self.gnmt
            else None
        )
        self.attention = Attention(hidden_size, attention, name="attention")
        self.combine = (
            None
            if self.gnmt
            else keras.layers.Dense(hidden_size, activation="tanh", use_bias=False, name="combine")
        )
        self.dropout = keras.layers.Dropout(dropout)
        self.output_projection = (
            None if tie_output_embedding else keras.layers.Dense(vocab_size, name="output")
        )

    def build(self, input_shape=None):
        self.embedding.build((None, None))
        rnn_input = self.embedding_size + (self.hidden_size if self.input_feeding else 0)
        self.rnn.build((None, None, rnn_input))
        if self.gnmt:
            self.upper.build((None, None, self.hidden_size))
        else:
            self.combine.build((None, None, 2 * self.hidden_size))
        self.attention.build()
        if self.output_projection is None:
            self.output_bias = self.add_weight(
                shape=(self.vocab_size,), initializer="zeros", name="output_bias"
            )
        else:
            self.output_projection.build((None, None, self.hidden_size))
        self.built = True

    def memory(self, encoder_memory, mask) -> Memory:
        """Prepares the encoder outputs for attention (keys are projected once here)."""
        return Memory(values=encoder_memory, keys=self.attention.keys(encoder_memory), mask=mask)

    def initial_state(self, encoder_states) -> DecoderState:
        """Decoder layer l starts from encoder layer l's final state, zeros where none exists."""
        batch = ops.shape(encoder_states[0][0])[0]
        zeros = ops.zeros((batch, self.hidden_size), dtype=self.compute_dtype)
        rnn = tuple(
            encoder_states[layer] if layer < len(encoder_states) else (zeros, zeros)
            for layer in range(self.num_layers)
        )
        return DecoderState(rnn=rnn, feed=zeros)

    def project(self, attentional, training=False):
        """Vocabulary logits [..., V] from attentional vectors [..., H]."""
        x = self.dropout(attentional, training=training)
        if self.output_projection is None:
            return ops.matmul(x, ops.transpose(self.embedding.embeddings)) + self.output_bias
        return self.output_projection(x)

    def _attend(self, top, memory: Memory, training=False):
        """top [B, T, H] -> attentional vectors [B, T, H], weights [B, T, T_s]."""
        context, weights = self.attention(
            top, memory.keys, memory.values, memory.mask, training=training
        )
        return self.combine(ops.concatenate([context, top], -1)), weights

    def _rnn_weights(self, dtype, pre_size: int = 0):
        """The LSTM stacks' step weights: a tuple per layer, or (bottom, upper) with GNMT."""
        bottom = self.rnn.step_weights(dtype, pre_size)
        return (bottom, self.upper.step_weights(dtype)) if self.gnmt else bottom

    def _step_attentional(
        self, embedded, state: DecoderState, memory: Memory, training, weights=None, projected=None
    ):
        """embedded [B, E] -> output vector [B, H] to project, new state, weights [B, T_s].

        With `projected` (layer 0's projection of the embedding, computed for all steps before
        the loop), `embedded` is not used and may be None.
        """
        if projected is not None:
            x = state.feed
        elif self.input_feeding:
            x = ops.concatenate([embedded, state.feed], -1)
        else:
            x = embedded
        if not self.gnmt:
            top, rnn_state = self.rnn.step(x, state.rnn, weights, projected, training=training)
            attentional, attention = self._attend(top[:, None, :], memory, training)
            attentional = attentional[:, 0, :]
            return attentional, DecoderState(rnn=rnn_state, feed=attentional), attention[:, 0, :]
        bottom_weights, upper_weights = (None, None) if weights is None else weights
        bottom, bottom_state = self.rnn.step(
            x, state.rnn[:1], bottom_weights, projected, training=training
        )
        context, attention = self.attention(
            bottom[:, None, :], memory.keys, memory.values, memory.mask, training=training
        )
        context = context[:, 0, :]
        top, upper_state = self.upper.step(
            self.dropout(bottom, training=training),
            state.rnn[1:],
            upper_weights,
            training=training,
            context=context,
        )
        return top, DecoderState(rnn=bottom_state + upper_state, feed=context), attention[:, 0, :]

    def step_weights(self) -> StepWeights:
        """`step`'s weights in the compute dtype; loops compute them once, before they start."""
        dtype = self.compute_dtype
        embedding = tf.cast(self.embedding.embeddings, dtype)
        if self.output_projection is None:
            kernel, bias = tf.transpose(embedding), self.output_bias
        else:
            kernel, bias = self.output_projection.kernel, self.output_projection.bias
        return StepWeights(
            rnn=self._rnn_weights(dtype),
            embedding=embedding,
            output_kernel=tf.cast(kernel, dtype),
            output_bias=tf.cast(bias, dtype),
        )

    def step(
        self,
        tokens,
        state: DecoderState,
        memory: Memory,
        training=False,
        weights: StepWeights | None = None,
    ) -> StepOutput:
        """One decoding step: tokens [B] (previous outputs) -> logits [B, V].

        `weights` is `step_weights()`, passed in by loops that step many times (inference).
        """
        if weights is None:
            embedded = self.dropout(self.embedding(tokens), training=training)
        else:
            embedded = tf.gather(weights.embedding, tokens)
        attentional, state, attention = self._step_attentional(
            embedded, state, memory, training, None if weights is None else weights.rnn
        )
        if weights is None:
            logits = self.project(attentional, training)
        else:
            logits = tf.matmul(attentional, weights.output_kernel) + weights.output_bias
        return StepOutput(logits=logits, state=state, attention=attention)

    def call(self, target_in, state: DecoderState, memory: Memory, training=False):
        """Teacher-forced decoding of target_in [B, T_t] -> logits [B, T_t, V]."""
        embedded = self.dropout(self.embedding(target_in), training=training)
        if self.input_feeding:
            attentional = self._unroll(embedded, state, memory, training)
        elif self.gnmt:  # no recurrence through the attention: whole sequences, no loop
            bottom, _ = self.rnn(embedded, initial_state=state.rnn[:1], training=training)
            context, _ = self.attention(
                bottom, memory.keys, memory.values, memory.mask, training=training
            )
            attentional, _ = self.upper(
                self.dropout(bottom, training=training),
                initial_state=state.rnn[1:],
                training=training,
                context=context,
            )
        else:
            top, _ = self.rnn(embedded, initial_state=state.rnn, training=training)
            attentional, _ = self._attend(top, memory, training)
        return self.project(attentional, training)

    def _unroll(self, embedded, state: DecoderState, memory: Memory, training):
        """Input-feeding recurrence over time: embedded [B, T_t, E] -> attentional [B, T_t, H].

        The bottom layer's projection of the embeddings is one matmul over all steps; inside
        the loop each layer does one matmul of [a_{t-1} or lower output; h] (see rnn.py).
        """
        steps = tf.shape(embedded)[1]
        weights = self._rnn_weights(embedded.dtype, pre_size=self.embedding_size)
        batch = tf.shape(embedded)[0]
        if self.gnmt:
            weights = (
                self.rnn.with_recurrent_masks(weights[0], batch, training),
                self.upper.with_recurrent_masks(weights[1], batch, training),
            )
        else:
            weights = self.rnn.with_recurrent_masks(weights, batch, training)
        bottom = weights[0][0] if self.gnmt else weights[0]
        projected = time_steps(bottom.project(embedded))  # T_t x [B, 4H]
        outputs = tf.TensorArray(embedded.dtype, size=steps)

        def body(t, state, outputs):
            attentional, state, _ = self._step_attentional(
                None, state, memory, training, weights, projected.read(t)
            )
            return t + 1, state, outputs.write(t, attentional)

        _, _, outputs = tf.while_loop(
            lambda t, *_: t < steps, body, (tf.constant(0), state, outputs)
        )
        return tf.transpose(outputs.stack(), (1, 0, 2))  # [B, T_t, H]

    def get_config(self):
        config = super().get_config()
        config.update(
            vocab_size=self.vocab_size,
            embedding_size=self.embedding_size,
            hidden_size=self.hidden_size,
            num_layers=self.num_layers,
            residual_start=self.residual_start,
            attention=self.attention_score,
            input_feeding=self.input_feeding,
            dropout=self.dropout_rate,
            tie_output_embedding=self.tie_output_embedding,
            attention_layer=self.attention_layer,
            recurrent_dropout=self.recurrent_dropout_rate,
        )
        return config
