"""A stack of LSTM layers with residual connections (Wu et al., 2016, section 3.1).

Layer l computes y_l = LSTM_l(dropout(x_l)), plus x_l from `residual_start` on, where x_l is the
layer's input. With recurrent dropout, h_{t-1} is multiplied by a dropout mask drawn once per
sequence before it enters the recurrent matmul (variational dropout, Gal and Ghahramani, 2016).
The stack runs over whole sequences (training) or one time step (decoding) with the same
weights: `keras.layers.LSTM` owns the weights (so checkpoints stay plain Keras ones), and
`run_lstm` / `LayerWeights` do the maths.

Why not call the Keras layer: on CPU it multiplies every time step's input by the kernel inside its
loop and casts the weights to the compute dtype at every step. Here the input projection of all
steps is one large matmul before the loop, and the loop does a single [B, D'+H] x [D'+H, 4H]
matmul, where D' is the part of the input only known inside the loop (input feeding).

Shapes: B batch, T time, D input size, H units, L layers.
"""

from __future__ import annotations

from typing import NamedTuple

import keras
import tensorflow as tf
from keras import ops

LSTMState = tuple  # (h [B, H], c [B, H])


def lstm_update(z, c):
    """New (h, c) from the pre-activations z [B, 4H] (Keras gate order i, f, g, o).

    The gates are computed in float32 even under bfloat16: TensorFlow's CPU sigmoid and tanh
    are about 1.5x slower on bfloat16 than on float32, and the cell state keeps more precision.
    """
    dtype = z.dtype
    i, f, g, o = tf.split(tf.cast(z, tf.float32), 4, axis=-1)
    c = tf.sigmoid(f) * tf.cast(c, tf.float32) + tf.sigmoid(i) * tf.tanh(g)
    h = tf.sigmoid(o) * tf.tanh(c)
    return tf.cast(h, dtype), tf.cast(c, dtype)


class LayerWeights(NamedTuple):
    """One LSTM layer's weights, cast once and arranged for a one-matmul step.

    The input x = [x_pre; x_loop]: x_pre [.., D_pre] is known before the loop (embeddings),
    x_loop [B, D_loop] only inside it (input feeding, lower layers' outputs).
    """

    pre_kernel: object  # [D_pre, 4H] or None when D_pre = 0
    loop_kernel: object  # [D_loop + H, 4H]: kernel rows of x_loop, then the recurrent kernel
    bias: object  # [4H]
    recurrent_mask: object = None  # [B, H] recurrent dropout mask on h_{t-1} (training), or None

    @classmethod
    def of(cls, lstm: keras.layers.LSTM, dtype, pre_size: int = 0) -> LayerWeights:
        cell = lstm.cell
        kernel = tf.cast(cell.kernel, dtype)
        return cls(
            pre_kernel=kernel[:pre_size] if pre_size else None,
            loop_kernel=tf.concat([kernel[pre_size:], tf.cast(cell.recurrent_kernel, dtype)], 0),
            bias=tf.cast(cell.bias, dtype),
        )

    def project(self, x_pre):
        """The part of the pre-activations known before the loop: [..., D_pre] -> [..., 4H].

        A sequence [B, T, D_pre] is flattened to one [B*T, D_pre] matmul: multiplied as a
        batch, its kernel gradient would build a [B, D_pre, 4H] tensor and sum it over B.
        """
        if len(x_pre.shape) == 2:
            return tf.matmul(x_pre, self.pre_kernel) + self.bias
        flat = tf.reshape(x_pre, [-1, tf.shape(x_pre)[-1]])  # [B*T, D_pre]
        z = tf.matmul(flat, self.pre_kernel) + self.bias  # [B*T, 4H]
        return tf.reshape(z, tf.concat([tf.shape(x_pre)[:-1], tf.shape(z)[-1:]], 0))

    def step(self, x_loop, state: LSTMState, projected=None) -> LSTMState:
        """One time step; `projected` is `project(x_pre)` for this step (None: bias only)."""
        h, c = state
        if self.recurrent_mask is not None:
            h = h * self.recurrent_mask
        inputs = h if x_loop is None else tf.concat([x_loop, h], -1)
        z = tf.matmul(inputs, self.loop_kernel)
        return lstm_update(z + (self.bias if projected is None else projected), c)


def recurrent_dropout_mask(batch, units: int, rate: float, dtype, seed) -> tf.Tensor:
    """[B, H]: 0 with probability `rate`, else 1 / (1 - rate); drawn once per sequence and used
    at every time step, so a dropped unit of h stays dropped for the whole sentence."""
    keep = keras.random.uniform((batch, units), seed=seed) >= rate
    return tf.cast(tf.cast(keep, tf.float32) / (1.0 - rate), dtype)


def time_steps(sequence) -> tf.TensorArray:
    """[B, T, ...] -> a TensorArray of T [B, ...] tensors for a `tf.while_loop` to read.

    Reading a TensorArray inside the loop has a cheap gradient; indexing a captured tensor
    (`sequence[t]`) would add a full-size gradient tensor at every step.
    """
    time_major = tf.transpose(sequence, [1, 0] + list(range(2, len(sequence.shape))))
    return tf.TensorArray(sequence.dtype, size=tf.shape(time_major)[0]).unstack(time_major)


def run_lstm(
    lstm: keras.layers.LSTM,
    inputs,
    initial_state=None,
    mask=None,
    reverse=False,
    recurrent_mask=None,
):
    """Runs an LSTM layer's weights over a whole sequence, input projection hoisted.

    Same maths as `keras.layers.LSTM(return_sequences=True, return_state=True)` (tested),
    with the Bidirectional convention: padded steps keep the state and output zeros, and
    `reverse` reads each sequence backwards from its last real step.

    Args:
        inputs: [B, T, D] in the compute dtype.
        initial_state: (h, c) [B, H] each, or None for zeros.
        mask: [B, T] bool, False at padding (right-padded), or None.
        reverse: run from the end; outputs are returned in input order.
        recurrent_mask: [B, H] recurrent dropout mask (`recurrent_dropout_mask`), or None.

    Returns:
        outputs [B, T, H], final h [B, H], final c [B, H].
    """
    weights = LayerWeights.of(lstm, inputs.dtype, pre_size=inputs.shape[-1])
    weights = weights._replace(recurrent_mask=recurrent_mask)
    batch, steps = tf.shape(inputs)[0], tf.shape(inputs)[1]
    if initial_state is None:
        zeros = tf.zeros([batch, lstm.cell.units], inputs.dtype)
        initial_state = (zeros, zeros)
    if mask is None:
        mask = tf.ones([batch, steps], tf.bool)
    if reverse:
        inputs, mask = tf.reverse(inputs, [1]), tf.reverse(mask, [1])
    projected = time_steps(weights.project(inputs))
    keep = time_steps(mask[:, :, None])  # [B, T, 1] -> T x [B, 1]
    outputs = tf.TensorArray(inputs.dtype, size=steps)

    def body(t, h, c, outputs):
        new_h, new_c = weights.step(None, (h, c), projected.read(t))
        keep_t = keep.read(t)
        h, c = tf.where(keep_t, new_h, h), tf.where(keep_t, new_c, c)
        return t + 1, h, c, outputs.write(t, tf.where(keep_t, new_h, tf.zeros_like(new_h)))

    _, h, c, outputs = tf.while_loop(
        lambda t, *_: t < steps, body, (tf.constant(0), *initial_state, outputs)
    )
    outputs = tf.transpose(outputs.stack(), (1, 0, 2))  # [B, T, H]
    return (tf.reverse(outputs, [1]) if reverse else outputs), h, c


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
        context_size: size of a vector concatenated to every layer's input (GNMT decoders feed
            the attention context to every layer above the bottom one); 0 for none.
        recurrent_dropout: rate of the variational dropout on every layer's h_{t-1} in training.
    """

    def __init__(
        self,
        units: int,
        num_layers: int,
        residual_start: int = 2,
        first_layer_index: int = 0,
        dropout: float = 0.0,
        context_size: int = 0,
        recurrent_dropout: float = 0.0,
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
        self.context_size = context_size
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
        self.recurrent_dropout_rate = recurrent_dropout

    @property
    def lstms(self) -> list[keras.layers.LSTM]:
        return [getattr(self, f"lstm_{i}") for i in range(self.num_layers)]

    def build(self, input_shape):
        size = input_shape[-1]
        for lstm in self.lstms:
            lstm.build((None, None, size + self.context_size))
            size = self.units
        # Created here, only when used: after every layer's __init__ has drawn its seeds, so a
        # model keeps the weights and dropout seeds it would have without recurrent dropout.
        if self.recurrent_dropout_rate:
            self.recurrent_seeds = keras.random.SeedGenerator(name="recurrent_dropout_seeds")
        self.built = True

    def _residual(self, layer: int, input_size: int) -> bool:
        return self.first_layer_index + layer >= self.residual_start and input_size == self.units

    def _with_context(self, layer: int, x, context, training):
        layer_input = self.dropout(x, training=training) if layer > 0 else x
        return layer_input if context is None else ops.concatenate([layer_input, context], -1)

    def recurrent_masks(self, batch, dtype, training) -> tuple:
        """Each layer's recurrent dropout mask [B, H] for one batch of sequences, or Nones
        (inference, or no recurrent dropout)."""
        if not (training and self.recurrent_dropout_rate):
            return (None,) * self.num_layers
        return tuple(
            recurrent_dropout_mask(
                batch, self.units, self.recurrent_dropout_rate, dtype, self.recurrent_seeds
            )
            for _ in range(self.num_layers)
        )

    def with_recurrent_masks(self, weights: tuple, batch, training) -> tuple:
        """`step_weights(...)` carrying this batch's recurrent dropout masks, for a loop that
        calls `step` at every time step (training)."""
        masks = self.recurrent_masks(batch, weights[0].bias.dtype, training)
        return tuple(w._replace(recurrent_mask=m) for w, m in zip(weights, masks, strict=True))

    def call(self, inputs, initial_state=None, mask=None, training=False, context=None):
        """Runs the stack over whole sequences.

        Args:
            inputs: [B, T, D].
            initial_state: L (h, c) pairs, or None for zeros.
            mask: [B, T] bool, False at padding (final states are taken at the last real step).
            context: [B, T, context_size] concatenated to every layer's input, or None.

        Returns:
            outputs [B, T, H] of the top layer and the L final (h, c) pairs.
        """
        states = []
        x = inputs
        masks = self.recurrent_masks(tf.shape(inputs)[0], inputs.dtype, training)
        for layer, lstm in enumerate(self.lstms):
            layer_input = self._with_context(layer, x, context, training)
            init = None if initial_state is None else initial_state[layer]
            y, h, c = run_lstm(
                lstm, layer_input, initial_state=init, mask=mask, recurrent_mask=masks[layer]
            )
            x = y + x if self._residual(layer, x.shape[-1]) else y
            states.append((h, c))
        return x, tuple(states)

    def step_weights(self, dtype, pre_size: int = 0) -> tuple[LayerWeights, ...]:
        """Every layer's weights for `step`, cast once; a loop computes them before it starts.

        Args:
            pre_size: leading input features of layer 0 whose projection the caller
                computes itself with `weights[0].project` (0: none).
        """
        return tuple(
            LayerWeights.of(lstm, dtype, pre_size if layer == 0 else 0)
            for layer, lstm in enumerate(self.lstms)
        )

    def step(self, inputs, states, weights=None, projected=None, training=False, context=None):
        """Advances every layer by one time step.

        Args:
            inputs: [B, D - pre_size], layer 0's input features not projected by the caller.
            states: L (h [B, H], c [B, H]) pairs.
            weights: `step_weights(...)`; None computes them here (fine outside loops).
            projected: [B, 4H], `weights[0].project(x_pre)` when pre_size > 0.
            context: [B, context_size] concatenated to every layer's input, or None.

        Returns:
            output [B, H] of the top layer and the new L (h, c) pairs.
        """
        if weights is None:
            weights = self.step_weights(inputs.dtype)
        new_states = []
        x = inputs
        for layer, layer_weights in enumerate(weights):
            layer_input = self._with_context(layer, x, context, training)
            h, c = layer_weights.step(layer_input, states[layer], projected if layer == 0 else None)
            pre = layer_weights.pre_kernel
            size = x.shape[-1] + (0 if pre is None else pre.shape[0])
            x = h + x if self._residual(layer, size) else h
            new_states.append((h, c))
        return x, tuple(new_states)

    def zero_state(self, batch_size):
        """L (h, c) pairs of zeros, [B, H] each."""
        zeros = ops.zeros((batch_size, self.units), dtype=self.compute_dtype)
        return tuple((zeros, zeros) for _ in range(self.num_layers))

    def get_config(self):
        config = super().get_config()
        config.update(
            units=self.units,
            num_layers=self.num_layers,
            residual_start=self.residual_start,
            first_layer_index=self.first_layer_index,
            dropout=self.dropout_rate,
            context_size=self.context_size,
            recurrent_dropout=self.recurrent_dropout_rate,
        )
        return config
