"""GNMT encoder: embeddings, a bidirectional bottom LSTM, then a residual LSTM stack.

Shapes: B batch, T_s source time, E embedding, H hidden (the bottom layer has H/2 per direction,
concatenated to H), L layers.
"""

from __future__ import annotations

from typing import NamedTuple

import keras
from keras import ops

from nmt.constants import PAD_ID
from nmt.model.rnn import ResidualLSTMStack, recurrent_dropout_mask, run_lstm


class EncoderOutput(NamedTuple):
    """What the decoder needs from the source."""

    memory: object  # [B, T_s, H] top-layer outputs
    mask: object  # [B, T_s] bool, True at real tokens
    states: tuple  # L final (h [B, H], c [B, H]) pairs, bottom layer first


@keras.saving.register_keras_serializable(package="nmt")
class Encoder(keras.layers.Layer):
    """Reads source ids into memory vectors and final states.

    Args:
        vocab_size: source vocabulary size.
        embedding_size: E.
        hidden_size: H (even).
        num_layers: L >= 1; layer 0 is bidirectional.
        residual_start: first global layer index with a residual connection.
        dropout: rate on embeddings and between layers.
        recurrent_dropout: rate of the variational dropout on every layer's h_{t-1} (rnn.py).
    """

    def __init__(
        self,
        vocab_size: int,
        embedding_size: int,
        hidden_size: int,
        num_layers: int,
        residual_start: int = 2,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if hidden_size % 2:
            raise ValueError(f"`hidden_size` must be even, got {hidden_size}")
        self.vocab_size = vocab_size
        self.embedding_size = embedding_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.residual_start = residual_start
        self.dropout_rate = dropout
        self.embedding = keras.layers.Embedding(vocab_size, embedding_size, name="embedding")
        self.bottom = keras.layers.Bidirectional(
            keras.layers.LSTM(hidden_size // 2, return_sequences=True, return_state=True),
            merge_mode="concat",
            name="bidirectional",
        )
        self.upper = (
            ResidualLSTMStack(
                hidden_size,
                num_layers - 1,
                residual_start=residual_start,
                first_layer_index=1,
                dropout=dropout,
                recurrent_dropout=recurrent_dropout,
                name="upper",
            )
            if num_layers > 1
            else None
        )
        self.dropout = keras.layers.Dropout(dropout)
        self.recurrent_dropout_rate = recurrent_dropout

    def build(self, input_shape=None):
        self.embedding.build((None, None))
        self.bottom.build((None, None, self.embedding_size))
        if self.upper is not None:
            self.upper.build((None, None, self.hidden_size))
        if self.recurrent_dropout_rate:  # created here for the reason given in rnn.py's build
            self.recurrent_seeds = keras.random.SeedGenerator(name="recurrent_dropout_seeds")
        self.built = True

    def call(self, source, training=False) -> EncoderOutput:
        """Encodes right-padded source ids [B, T_s]."""
        mask = ops.not_equal(source, PAD_ID)
        x = self.dropout(self.embedding(source), training=training)
        fw_mask = bw_mask = None
        if training and self.recurrent_dropout_rate:
            fw_mask, bw_mask = (
                recurrent_dropout_mask(
                    ops.shape(source)[0],
                    self.hidden_size // 2,
                    self.recurrent_dropout_rate,
                    x.dtype,
                    self.recurrent_seeds,
                )
                for _ in range(2)
            )
        forward, fw_h, fw_c = run_lstm(
            self.bottom.forward_layer, x, mask=mask, recurrent_mask=fw_mask
        )
        backward, bw_h, bw_c = run_lstm(
            self.bottom.backward_layer, x, mask=mask, reverse=True, recurrent_mask=bw_mask
        )
        x = ops.concatenate([forward, backward], -1)
        states = [(ops.concatenate([fw_h, bw_h], -1), ops.concatenate([fw_c, bw_c], -1))]
        if self.upper is not None:
            x, upper_states = self.upper(
                self.dropout(x, training=training), mask=mask, training=training
            )
            states.extend(upper_states)
        return EncoderOutput(memory=x, mask=mask, states=tuple(states))

    def get_config(self):
        config = super().get_config()
        config.update(
            vocab_size=self.vocab_size,
            embedding_size=self.embedding_size,
            hidden_size=self.hidden_size,
            num_layers=self.num_layers,
            residual_start=self.residual_start,
            dropout=self.dropout_rate,
            recurrent_dropout=self.recurrent_dropout_rate,
        )
        return config
