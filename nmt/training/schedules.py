"""Learning-rate schedule: linear warmup, then constant, inverse-sqrt or exponential decay."""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

DECAYS = ("none", "inverse_sqrt", "exponential")


@keras.saving.register_keras_serializable(package="nmt")
class WarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """lr(step) = peak * warmup(step) * decay(step).

    warmup rises linearly to 1 over `warmup_steps`; "inverse_sqrt" decays as
    sqrt(max(warmup_steps, 1) / step) after warmup (Vaswani et al., 2017); "exponential"
    multiplies by `decay_rate` every `decay_steps` from `decay_start` on (Luong et al., 2015).

    `step_scale`, a variable that training may change, runs the decay that many times faster:
    a run that `training.fit_schedule_at` shrinks to fit `max_minutes` still ends its decay.
    At 1.0 the rates are exactly those without it.
    """

    def __init__(
        self,
        learning_rate: float,
        warmup_steps: int = 0,
        decay: str = "none",
        decay_start: int = 0,
        decay_steps: int = 1000,
        decay_rate: float = 0.5,
        step_scale: tf.Variable | None = None,
    ):
        if decay not in DECAYS:
            raise ValueError(f"`decay` must be one of {DECAYS}, got {decay!r}")
        self.learning_rate = learning_rate
        self.warmup_steps = warmup_steps
        self.decay = decay
        self.decay_start = decay_start
        self.decay_steps = decay_steps
        self.decay_rate = decay_rate
        self.step_scale = step_scale

    def __call__(self, step):
        step = ops.cast(step, "float32") + 1.0  # the first update is step 1
        factor = ops.minimum(1.0, step / max(self.warmup_steps, 1))
        if self.step_scale is not None:
            step = step * ops.cast(self.step_scale, "float32")
        if self.decay == "inverse_sqrt":
            factor *= ops.sqrt(max(self.warmup_steps, 1) / ops.maximum(step, self.warmup_steps))
        elif self.decay == "exponential":
            decayed = ops.maximum(step - self.decay_start, 0.0) / self.decay_steps
            factor *= ops.power(self.decay_rate, ops.floor(decayed))
        return self.learning_rate * factor

    def get_config(self):
        return dict(
            learning_rate=self.learning_rate,
            warmup_steps=self.warmup_steps,
            decay=self.decay,
            decay_start=self.decay_start,
            decay_steps=self.decay_steps,
            decay_rate=self.decay_rate,
        )


class ScheduleFit:
    """Fits a run's steps and decay to `training.max_minutes`, once, at `fit_schedule_at`.

    A schedule in steps ends its decay only on a machine fast enough to reach `max_steps` in
    time; a slower one used to stop at `max_minutes` before the decay, or before any of it.
    Here the pace of the first `fit_schedule_at` steps (validation included) decides how many
    steps fit, rounded down to a checkpoint step; the run then stops there and `step_scale`
    runs the decay faster by the same factor. A machine on which every step fits changes
    nothing, bit for bit. The decision is saved in every checkpoint, so resuming keeps it.
    """

    MARGIN = 0.97  # of max_minutes planned for: the pace varies by a few percent

    def __init__(self, training, progress, step_scale: tf.Variable, log):
        self.training = training
        self.step_scale = step_scale
        self.log = log
        # Made after the checkpoint is read: TensorFlow restores a saved value into a variable
        # created later, and checkpoints from before the option still load (0: not fitted yet).
        progress.fitted_steps = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.fitted_steps = progress.fitted_steps
        self._apply()

    @property
    def max_steps(self) -> int:
        return int(self.fitted_steps) or self.training.max_steps

    def after_step(self, step: int, seconds: float) -> bool:
        """Decides at `fit_schedule_at`; True when it did (the run's length may have changed)."""
        t = self.training
        if step != t.fit_schedule_at or int(self.fitted_steps):
            return False
        fits = int(self.MARGIN * 60 * t.max_minutes * step / max(seconds, 1e-9))
        fits = max(fits // t.checkpoint_every * t.checkpoint_every, step)
        self.fitted_steps.assign(min(fits, t.max_steps))
        self._apply()
        if fits >= t.max_steps:
            self.log(f"schedule: all {t.max_steps:,} steps fit in {t.max_minutes:g} minutes")
        else:
            self.log(
                f"schedule: {step:,} steps took {seconds / 60:.1f} minutes, so {fits:,} of "
                f"{t.max_steps:,} fit in {t.max_minutes:g}: training stops there, the decay runs "
                f"{t.max_steps / fits:.2f}x faster (training.fit_schedule_at)"
            )
        return True

    def _apply(self) -> None:
        if int(self.fitted_steps):
            self.step_scale.assign(self.training.max_steps / int(self.fitted_steps))
