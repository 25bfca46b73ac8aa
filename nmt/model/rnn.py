"""A stack of LSTM layers with residual connections (Wu et al., 2016, section 3.1).

Layer l computes y_l = LSTM_l(dropout(x_l)), plus x_l from `residual_start` on, where x_l is the
layer's input. The stack runs over whole sequences (training) or one time step (decoding) with the
same weights: `keras.layers.LSTM` owns the weights, its `cell` does the single step.

Shapes: B batch, T time, D input size, H units, L layers.
"""

from __future__ import annotations

import keras
from keras import ops

LSTMState = tuple  # (h [B, H], c [B, H])


@keras.saving.register_keras_serializable(package="nmt")
class ResidualLSTMStack(keras.layers.Layer):
    """L unidirectional LSTM layers; residual connections from a given global layer index.

    Args:
        units: H, the size of every layer.
        num_layers: L.
        residual_start: global index of the first layer that adds its input to its output.
        first_layer_index: global index of this stack's first layer (the encoder's bottom layer
            is bidirectional and lives outside the stack, so its upper stack starts at 1).
        dropout: rate applied to the input of every layer after the first of this stack.
    """

    def __init__(
        self,
        units: int,
        num_layers: int,
        residual_start: int = 2,
        first_layer_index: int = 0,
        dropout: float = 0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.supports_masking = True
        if units <= 0:
            raise ValueError(f"`units` must be a positive integer, got {units}")
        if num_layers <= 0:
            raise ValueError(f"`num_layers` must be a positive integer, got {num_layers}")
        self.units = units
        self.num_layers = num_layers
        self.residual_start = residual_start
        self.first_layer_index = first_layer_index
        self.dropout_rate = dropout
        # One attribute per layer (not a list): tf.train.Checkpoint only tracks attributes.
        for i in range(num_layers):
            setattr(
                self,
                f"lstm_{i}",
                keras.layers.LSTM(
                    units, return_sequences=True, return_state=True, name=f"lstm_{i}"
                ),
            )
        self.dropout = keras.layers.Dropout(dropout)

    @property
    def lstms(self) -> list[keras.layers.LSTM]:
        return [getattr(self, f"lstm_{i}") for i in range(self.num_layers)]

    def build(self, input_shape):
        size = input_shape[-1]
        for lstm in self.lstms:
            lstm.build((None, None, size))
            size = self.units
        self.built = True

    def _residual(self, layer: int, input_size: int) -> bool:
        return self.first_layer_index + layer >= self.residual_start and input_size == self.units

    def call(self, inputs, initial_state=None, mask=None, training=False):
        """Runs the stack over whole sequences.

        Args:
            inputs: [B, T, D].
            initial_state: L (h, c) pairs, or None for zeros.
            mask: [B, T] bool, False at padding (final states are taken at the last real step).

        Returns:
            outputs [B, T, H] of the top layer and the L final (h, c) pairs.
        """
        states = []
        x = inputs
        for layer, lstm in enumerate(self.lstms):
            layer_input = self.dropout(x, training=training) if layer > 0 else x
            init = None if initial_state is None else list(initial_state[layer])
            y, h, c = lstm(layer_input, initial_state=init, mask=mask, training=training)
            x = y + x if self._residual(layer, x.shape[-1]) else y
            states.append((h, c))
        return x, tuple(states)

    def step(self, inputs, states, training=False):
        """Advances every layer by one time step.

        Args:
            inputs: [B, D].
            states: L (h [B, H], c [B, H]) pairs.

        Returns:
            output [B, H] of the top layer and the new L (h, c) pairs.
        """
        new_states = []
        x = inputs
        for layer, lstm in enumerate(self.lstms):
            layer_input = self.dropout(x, training=training) if layer > 0 else x
            y, (h, c) = lstm.cell(layer_input, list(states[layer]), training=training)
            x = y + x if self._residual(layer, x.shape[-1]) else y
            new_states.append((h, c))
        return x, tuple(new_states)

    def zero_state(self, batch_size):
        """L (h, c) pairs of zeros, [B, H] each."""
        zeros = ops.zeros((batch_size, self.units))
        return tuple((zeros, zeros) for _ in range(self.num_layers))

    def get_config(self):
        config = super().get_config()
        config.update(
            units=self.units,
            num_layers=self.num_layers,
            residual_start=self.residual_start,
            first_layer_index=self.first_layer_index,
            dropout=self.dropout_rate,
        )
        return config
