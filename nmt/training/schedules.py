"""Learning-rate schedule: linear warmup, then constant, inverse-sqrt or exponential decay."""

from __future__ import annotations

import keras
from keras import ops

DECAYS = ("none", "inverse_sqrt", "exponential")


@keras.saving.register_keras_serializable(package="nmt")
class WarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """lr(step) = peak * warmup(step) * decay(step).

    warmup rises linearly to 1 over `warmup_steps`; "inverse_sqrt" decays as
    sqrt(max(warmup_steps, 1) / step) after warmup (Vaswani et al., 2017); "exponential"
    multiplies by `decay_rate` every `decay_steps` from `decay_start` on (Luong et al., 2015).
    """

    def __init__(
        self,
        learning_rate: float,
        warmup_steps: int = 0,
        decay: str = "none",
        decay_start: int = 0,
        decay_steps: int = 1000,
        decay_rate: float = 0.5,
    ):
        if decay not in DECAYS:
            raise ValueError(f"`decay` must be one of {DECAYS}, got {decay!r}")
        self.learning_rate = learning_rate
        self.warmup_steps = warmup_steps
        self.decay = decay
        self.decay_start = decay_start
        self.decay_steps = decay_steps
        self.decay_rate = decay_rate

    def __call__(self, step):
        step = ops.cast(step, "float32") + 1.0  # the first update is step 1
        factor = ops.minimum(1.0, step / max(self.warmup_steps, 1))
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
