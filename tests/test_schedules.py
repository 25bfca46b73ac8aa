"""The learning-rate schedule's values at known steps (the optimizer's step 0 is update 1)."""

import sys

import numpy as np
import pytest
import tensorflow as tf

from nmt.config import TrainingConfig
from nmt.training.callbacks import ProgressReport
from nmt.training.schedules import ScheduleFit, WarmupDecay


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


def test_a_step_scale_of_one_changes_no_rate_and_two_decays_twice_as_fast():
    plain = WarmupDecay(1.0, decay="exponential", decay_start=10, decay_steps=5)
    one = WarmupDecay(
        1.0, decay="exponential", decay_start=10, decay_steps=5, step_scale=tf.Variable(1.0)
    )
    steps = list(range(40))
    assert rates(one, steps) == rates(plain, steps)
    scale = tf.Variable(1.0)
    faster = WarmupDecay(1.0, decay="exponential", decay_start=10, decay_steps=5, step_scale=scale)
    scale.assign(2.0)  # a variable: the compiled train step sees the change
    np.testing.assert_allclose(rates(faster, [0, 4, 6, 9]), rates(plain, [1, 9, 13, 19]))


class _Progress(tf.Module):
    def __init__(self):
        super().__init__(name="progress")
        self.epoch = tf.Variable(0, dtype=tf.int64)


def _fit(max_steps=16000, progress=None):
    training = TrainingConfig(
        max_steps=max_steps, max_minutes=60, fit_schedule_at=2000, checkpoint_every=1000
    )
    lines = []
    scale = tf.Variable(1.0)
    fit = ScheduleFit(training, progress or _Progress(), scale, lines.append)
    return fit, scale, lines


def test_a_slow_machine_trains_the_steps_that_fit_and_decays_faster():
    fit, scale, lines = _fit()
    fit.after_step(1999, 100.0)
    assert fit.max_steps == 16000 and float(scale) == 1.0  # only at fit_schedule_at
    fit.after_step(2000, 11.3 * 60)  # 10,300 steps would take 58.2 of the 60 minutes
    assert fit.max_steps == 10000  # a multiple of checkpoint_every, with the 3% margin
    assert float(scale) == pytest.approx(1.6)
    assert "10,000 of 16,000 fit in 60" in lines[0]
    fit.after_step(2000, 1.0)  # decided once
    assert fit.max_steps == 10000


def test_a_fast_enough_machine_keeps_the_schedule():
    fit, scale, lines = _fit()
    fit.after_step(2000, 7.0 * 60)
    assert fit.max_steps == 16000 and float(scale) == 1.0
    assert lines == ["schedule: all 16,000 steps fit in 60 minutes"]


def test_the_fitted_schedule_is_resumed_and_old_checkpoints_still_load(tmp_path):
    progress = _Progress()
    fit, _, _ = _fit(progress=progress)
    fit.after_step(2000, 20 * 60)
    saved = tf.train.Checkpoint(progress=progress).write(str(tmp_path / "fitted"))
    old = tf.train.Checkpoint(progress=_Progress()).write(str(tmp_path / "old"))

    resumed = _Progress()
    tf.train.Checkpoint(progress=resumed).read(saved).assert_existing_objects_matched()
    fit, scale, _ = _fit(progress=resumed)  # made after the read, as the trainer does
    assert fit.max_steps == 5000 and float(scale) == pytest.approx(3.2)

    from_old = _Progress()
    tf.train.Checkpoint(progress=from_old).read(old).assert_existing_objects_matched()
    fit, scale, _ = _fit(progress=from_old)
    assert fit.max_steps == 16000 and float(scale) == 1.0


def test_the_terminal_bar_ends_at_the_fitted_step(monkeypatch, capsys):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    monkeypatch.delenv("NMT_QUIET", raising=False)
    report = ProgressReport(log_every=1000, max_steps=16000, optimizer=None, log=print)
    report.set_total(10000)
    report.bar.update(10000)
    drawn = capsys.readouterr().out
    assert "10000/10000" in drawn and "16000" not in drawn
