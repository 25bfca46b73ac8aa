import keras
import numpy as np
import pytest
import tensorflow as tf

from nmt.model.rnn import ResidualLSTMStack, run_lstm


def test_residual_stack_adds_input_from_residual_start():
    keras.utils.set_random_seed(0)
    stack = ResidualLSTMStack(units=6, num_layers=3, residual_start=1)
    x = np.random.default_rng(0).normal(size=(2, 5, 6)).astype("float32")
    stack.build(x.shape)
    out, states = stack(x)
    # Recompute by hand: layer 0 plain, layers 1 and 2 residual (x + LSTM(x)).
    y0, *_ = stack.lstms[0](x)
    y1 = stack.lstms[1](y0)[0] + y0
    y2 = stack.lstms[2](y1)[0] + y1
    np.testing.assert_allclose(out, y2, rtol=1e-6, atol=1e-6)
    assert len(states) == 3


def test_no_residual_when_sizes_differ_or_before_start():
    stack = ResidualLSTMStack(units=4, num_layers=2, residual_start=5)
    x = np.ones((1, 3, 7), "float32")
    stack.build(x.shape)
    out, _ = stack(x)
    np.testing.assert_allclose(out, stack.lstms[1](stack.lstms[0](x)[0])[0], atol=1e-6)


def test_step_equals_whole_sequence():
    keras.utils.set_random_seed(1)
    stack = ResidualLSTMStack(units=5, num_layers=3, residual_start=1)
    x = np.random.default_rng(1).normal(size=(2, 4, 5)).astype("float32")
    stack.build(x.shape)
    whole, final = stack(x)
    state = stack.zero_state(2)
    for t in range(4):
        out, state = stack.step(x[:, t], state)
        np.testing.assert_allclose(out, whole[:, t], atol=1e-5)
    np.testing.assert_allclose(state[-1][1], final[-1][1], atol=1e-5)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="`units` must be a positive integer, got 0"):
        ResidualLSTMStack(units=0, num_layers=1)


@pytest.mark.parametrize("reverse", [False, True])
def test_run_lstm_equals_keras_lstm_on_padded_batches(reverse):
    """The hoisted-projection loop computes what keras.layers.LSTM (Bidirectional) computes."""
    keras.utils.set_random_seed(2)
    lstm = keras.layers.LSTM(6, return_sequences=True, return_state=True, go_backwards=reverse)
    x = np.random.default_rng(2).normal(size=(3, 5, 4)).astype("float32")
    lengths = np.array([5, 3, 1])
    mask = np.arange(5)[None, :] < lengths[:, None]
    initial = [np.random.default_rng(3).normal(size=(3, 6)).astype("float32") for _ in "hc"]
    lstm.build(x.shape)
    expected, h, c = lstm(x, mask=mask, initial_state=initial)
    if reverse:  # Keras returns go_backwards outputs last step first; padding is skipped by mask
        expected = np.flip(np.asarray(expected), 1)
    outputs, fh, fc = run_lstm(lstm, x, initial_state=initial, mask=mask, reverse=reverse)
    np.testing.assert_allclose(fh, h, atol=1e-5)
    np.testing.assert_allclose(fc, c, atol=1e-5)
    for row, length in enumerate(lengths):
        np.testing.assert_allclose(outputs[row, :length], expected[row, :length], atol=1e-5)
        np.testing.assert_array_equal(outputs[row, length:], 0.0)


def test_run_lstm_has_the_gradients_of_keras_lstm():
    """Training through the hoisted loop updates the weights as keras.layers.LSTM would."""
    keras.utils.set_random_seed(4)
    rng = np.random.default_rng(4)
    lstm = keras.layers.LSTM(6, return_sequences=True)
    x = tf.constant(rng.normal(size=(3, 5, 4)), tf.float32)
    probe = tf.constant(rng.normal(size=(3, 5, 6)), tf.float32)  # a loss that weighs every output
    lstm.build(x.shape)
    with tf.GradientTape(persistent=True) as tape:
        expected = tf.reduce_sum(lstm(x) * probe)
        actual = tf.reduce_sum(run_lstm(lstm, x)[0] * probe)
    for weight in lstm.trainable_variables:
        np.testing.assert_allclose(
            tape.gradient(actual, weight), tape.gradient(expected, weight), atol=1e-5
        )


def test_recurrent_dropout_masks_h_where_it_enters_the_recurrent_matmul():
    """A mask m on h_{t-1} is an LSTM whose recurrent kernel rows are scaled by m: zeros cut
    the recurrence (each step sees only its input), 2s double it."""
    keras.utils.set_random_seed(4)
    lstm = keras.layers.LSTM(6, return_sequences=True, return_state=True)
    x = np.random.default_rng(4).normal(size=(3, 5, 4)).astype("float32")
    lstm.build(x.shape)
    recurrent = lstm.cell.recurrent_kernel.numpy()
    for scale in (0.0, 2.0):
        masked, h, c = run_lstm(lstm, tf.constant(x), recurrent_mask=tf.fill([3, 6], scale))
        lstm.cell.recurrent_kernel.assign(recurrent * scale)
        expected, expected_h, expected_c = lstm(x)
        lstm.cell.recurrent_kernel.assign(recurrent)
        np.testing.assert_allclose(masked, expected, atol=1e-6)
        np.testing.assert_allclose(c, expected_c, atol=1e-6)


def test_recurrent_dropout_draws_one_mask_per_sentence_in_training_only():
    keras.utils.set_random_seed(5)
    stack = ResidualLSTMStack(units=400, num_layers=2, recurrent_dropout=0.25)
    stack.build((None, None, 400))
    assert stack.recurrent_masks(8, tf.float32, training=False) == (None, None)
    masks = stack.recurrent_masks(8, tf.float32, training=True)
    for mask in masks:
        assert mask.shape == (8, 400)
        assert set(np.unique(mask.numpy())) == {0.0, np.float32(1 / 0.75)}
        assert 0.2 < float(np.mean(mask.numpy() == 0)) < 0.3
    assert not np.array_equal(masks[0], masks[1])
    x = np.random.default_rng(5).normal(size=(2, 3, 400)).astype("float32")
    np.testing.assert_array_equal(stack(x)[0], stack(x)[0])
    assert not np.allclose(stack(x, training=True)[0], stack(x, training=True)[0])
