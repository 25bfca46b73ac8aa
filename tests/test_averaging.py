"""Checkpoint averaging: N identical checkpoints average to the same weights; two to the mean."""

import numpy as np

from nmt.decoding.translator import Translator
from nmt.run_directory import checkpoints_in
from nmt.training.averaging import average_checkpoints


def test_averaging_identical_checkpoints_returns_the_same_weights(trained_run):
    newest = checkpoints_in(trained_run / "checkpoints")[0]
    averaged = average_checkpoints(trained_run, [newest, newest, newest])
    a = Translator.load(trained_run, newest)
    b = Translator.load(trained_run, averaged)
    for x, y in zip(a.model.trainable_variables, b.model.trainable_variables, strict=True):
        np.testing.assert_allclose(x.numpy(), y.numpy(), rtol=1e-6, atol=1e-7)


def test_averaging_two_checkpoints_gives_their_mean(trained_run):
    first, second = checkpoints_in(trained_run / "checkpoints")[:2]
    averaged = average_checkpoints(trained_run, [first, second])
    a, b = Translator.load(trained_run, first), Translator.load(trained_run, second)
    mean = Translator.load(trained_run, averaged)
    for x, y, m in zip(
        a.model.trainable_variables,
        b.model.trainable_variables,
        mean.model.trainable_variables,
        strict=True,
    ):
        np.testing.assert_allclose(m.numpy(), (x.numpy() + y.numpy()) / 2, rtol=1e-5, atol=1e-6)
    assert mean.translate(["twenty one"])[0]  # the averaged model translates
