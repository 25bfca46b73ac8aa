"""The whole translation model: `Encoder` + `Decoder`, trainable as one Keras model.

`call` is the teacher-forced forward pass used in training; `encode` and `step` are what the
search uses, one token at a time, with the same weights.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from nmt.config import ModelConfig
from nmt.constants import EOS_ID, UNK_ID
from nmt.model.decoder import Decoder, DecoderState, Memory, StepOutput
from nmt.model.encoder import Encoder
from nmt.model.precision import resolve_compute_dtype


@keras.saving.register_keras_serializable(package="nmt")
class Seq2Seq(keras.Model):
    """GNMT-style LSTM encoder-decoder with attention.

    Args:
        source_vocab_size: source vocabulary size.
        target_vocab_size: target vocabulary size (V).
        the rest: see `nmt.config.ModelConfig`.
    """

    def __init__(
        self,
        source_vocab_size: int,
        target_vocab_size: int,
        embedding_size: int = 256,
        hidden_size: int = 256,
        encoder_layers: int = 2,
        decoder_layers: int = 2,
        residual_start: int = 2,
        attention: str = "general",
        input_feeding: bool = True,
        dropout: float = 0.3,
        tie_output_embedding: bool = False,
        attention_layer: str = "top",
        token_dropout: float = 0.0,
        token_dropout_start: int = 0,
        recurrent_dropout: float = 0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.source_vocab_size = source_vocab_size
        self.target_vocab_size = target_vocab_size
        self.model_options = dict(
            embedding_size=embedding_size,
            hidden_size=hidden_size,
            encoder_layers=encoder_layers,
            decoder_layers=decoder_layers,
            residual_start=residual_start,
            attention=attention,
            input_feeding=input_feeding,
            dropout=dropout,
            tie_output_embedding=tie_output_embedding,
            attention_layer=attention_layer,
            token_dropout=token_dropout,
            token_dropout_start=token_dropout_start,
            recurrent_dropout=recurrent_dropout,
        )
        self.encoder = Encoder(
            source_vocab_size,
            embedding_size,
            hidden_size,
            encoder_layers,
            residual_start=residual_start,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            name="encoder",
        )
        self.decoder = Decoder(
            target_vocab_size,
            embedding_size,
            hidden_size,
            decoder_layers,
            residual_start=max(residual_start, 1),
            attention=attention,
            input_feeding=input_feeding,
            dropout=dropout,
            tie_output_embedding=tie_output_embedding,
            attention_layer=attention_layer,
            recurrent_dropout=recurrent_dropout,
            name="decoder",
        )
        # Created only when used, and after the layers above so that their seeds are drawn as
        # before: a model without it keeps exactly the variables and random states it had.
        self.token_dropout = token_dropout
        self.token_dropout_start = token_dropout_start
        if token_dropout:
            self.token_seeds = keras.random.SeedGenerator(name="token_dropout_seeds")

    def build(self, input_shape=None):
        self.encoder.build()
        self.decoder.build()
        self.built = True

    def encode(self, source, training=False) -> tuple[Memory, DecoderState]:
        """source [B, T_s] -> attention memory and the decoder's initial state."""
        encoded = self.encoder(source, training=training)
        memory = self.decoder.memory(encoded.memory, encoded.mask)
        return memory, self.decoder.initial_state(encoded.states)

    def step_weights(self):
        """The decoder LSTMs' weights for `step`; a search computes them once before its loop."""
        return self.decoder.step_weights()

    def step(self, tokens, state: DecoderState, memory: Memory, weights=None) -> StepOutput:
        """One inference step: previous tokens [B] -> logits [B, V], new state, attention."""
        return self.decoder.step(tokens, state, memory, training=False, weights=weights)

    def call(self, inputs, training=False, step=None):
        """Teacher-forced logits [B, T_t, V] for {"source": [B, T_s], "target_in": [B, T_t]}.

        `step`, the optimizer's step count, lets token dropout begin at `token_dropout_start`;
        without it token dropout acts on every training call.
        """
        source, target_in = inputs["source"], inputs["target_in"]
        if training and self.token_dropout:
            active = True if step is None else step >= self.token_dropout_start
            source = self._drop_tokens(source, active)
            target_in = self._drop_tokens(target_in, active)
        memory, state = self.encode(source, training=training)
        return self.decoder(target_in, state, memory, training=training)

    def _drop_tokens(self, ids, active=True):
        """Each piece becomes <unk> with probability `token_dropout` (padding, BOS, EOS kept).

        The model must then translate from context where a piece is missing, a regularizer for
        small corpora (word dropout, Gal and Ghahramani, 2016; Sennrich et al., 2016). The
        random draw happens also while inactive (`active` False), so the random state at any
        step does not depend on when dropping began.
        """
        uniform = keras.random.uniform(tf.shape(ids), seed=self.token_seeds)
        drop = (uniform < self.token_dropout) & (ids > EOS_ID) & active
        return tf.where(drop, tf.cast(UNK_ID, ids.dtype), ids)

    def get_config(self):
        config = super().get_config()
        config.update(
            source_vocab_size=self.source_vocab_size,
            target_vocab_size=self.target_vocab_size,
            **self.model_options,
        )
        return config


def build_model(
    config: ModelConfig, source_vocab_size: int, target_vocab_size: int, initialize: bool = True
) -> Seq2Seq:
    """Builds the model described by `config` with its weights created.

    With `compute_dtype: bfloat16` the layers compute in bfloat16 and keep float32 weights
    (Keras "mixed_bfloat16"), so checkpoints are the same either way; `auto` picks bfloat16
    only where the hardware computes it natively (`precision.py`). `initialize=False` skips
    `model.param_init`'s second initialization, for a model whose checkpoint replaces every
    weight at once (it saves a one-sentence `nmt translate` a pass over all the weights).
    """
    previous = keras.config.dtype_policy()
    precision = resolve_compute_dtype(config.compute_dtype)
    keras.config.set_dtype_policy("mixed_bfloat16" if precision.dtype == "bfloat16" else "float32")
    try:
        model = _build(config, source_vocab_size, target_vocab_size, initialize)
    finally:
        keras.config.set_dtype_policy(previous)
    return model


def _build(
    config: ModelConfig, source_vocab_size: int, target_vocab_size: int, initialize: bool
) -> Seq2Seq:
    model = Seq2Seq(
        source_vocab_size,
        target_vocab_size,
        embedding_size=config.embedding_size,
        hidden_size=config.hidden_size,
        encoder_layers=config.encoder_layers,
        decoder_layers=config.decoder_layers,
        residual_start=config.residual_start,
        attention=config.attention,
        input_feeding=config.input_feeding,
        dropout=config.dropout,
        tie_output_embedding=config.tie_output_embedding,
        attention_layer=config.attention_layer,
        token_dropout=config.token_dropout,
        token_dropout_start=config.token_dropout_start,
        recurrent_dropout=config.recurrent_dropout,
        name="seq2seq",
    )
    model.build()
    if initialize and config.param_init > 0:
        for weight in model.trainable_weights:
            weight.assign(
                tf.random.uniform(weight.shape, -config.param_init, config.param_init, weight.dtype)
            )
    return model
