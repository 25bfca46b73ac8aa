"""The learning-rate schedule's values at known steps (the optimizer's step 0 is update 1)."""

import numpy as np
import pytest

from nmt.training.schedules import WarmupDecay


def rates(schedule: WarmupDecay, steps: list[int]) -> list[float]:
    return [float(schedule(step)) for step in steps]


def test_linear_warmup_then_constant():
    schedule = WarmupDecay(1e-3, warmup_steps=4)
    np.testing.assert_allclose(
        rates(schedule, [0, 1, 2, 3, 4, 100]), [2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3]
    )


def test_inverse_square_root_decay_after_warmup():
    schedule = WarmupDecay(1.0, warmup_steps=4, decay="inverse_sqrt")
    np.testing.assert_allclose(rates(schedule, [1, 3, 15, 63]), [0.5, 1.0, 0.5, 0.25], rtol=1e-6)


def test_exponential_decay_halves_every_decay_steps_from_decay_start():
    schedule = WarmupDecay(1.0, decay="exponential", decay_start=10, decay_steps=5, decay_rate=0.5)
    np.testing.assert_allclose(
        rates(schedule, [0, 9, 13, 14, 18, 19, 24]), [1, 1, 1, 0.5, 0.5, 0.25, 0.125]
    )


def test_unknown_decay_is_named():
    with pytest.raises(ValueError, match="`decay` must be one of"):
        WarmupDecay(1.0, decay="cosine")
