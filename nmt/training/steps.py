"""The compiled training and evaluation steps, and the optimizer they update.

The loop is our own `tf.function` train step rather than `Model.fit`, so that it can resume
mid-epoch at the exact batch and run under `tf.distribute` multi-worker strategies (which
Keras 3's `fit` does not support).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from nmt.config import TrainingConfig
from nmt.training.losses import masked_cross_entropy
from nmt.training.schedules import WarmupDecay

BATCH_SPEC = {
    name: tf.TensorSpec([None, None], tf.int32) for name in ("source", "target_in", "target_out")
}


def make_optimizer(
    training: TrainingConfig, step_scale: tf.Variable | None = None
) -> keras.optimizers.Optimizer:
    """Adam with the configured schedule (the train step clips the gradients); `step_scale`
    speeds up its decay (nmt/training/schedules.py, ScheduleFit)."""
    t = training
    schedule = WarmupDecay(
        t.learning_rate,
        t.warmup_steps,
        t.decay,
        t.decay_start,
        t.decay_steps,
        t.decay_rate,
        step_scale,
    )
    return keras.optimizers.Adam(
        learning_rate=schedule,
        use_ema=t.ema_decay > 0,
        ema_momentum=t.ema_decay if t.ema_decay > 0 else 0.99,
    )


def make_train_step(
    model,
    optimizer,
    label_smoothing: float,
    clip_norm: float = 5.0,
    jit_compile: bool = False,
    strategy: tf.distribute.Strategy | None = None,
    input_signature=(BATCH_SPEC,),
):
    """A compiled step: forward, smoothed loss per target token, clipped Adam update.

    Under a `tf.distribute` strategy every replica runs on its own batch; the loss is divided
    by the global token count and the summed gradients are clipped by their global norm, so
    the update equals one device's update on all the replicas' batches (Keras would clip each
    replica's share separately).

    Returns:
        train_step(batch) -> (mean loss per target token, target tokens, gradient norm), over
        all replicas.
    """
    strategy = strategy or tf.distribute.get_strategy()
    replicas = strategy.num_replicas_in_sync

    def replica_step(batch):
        context = tf.distribute.get_replica_context()
        with tf.GradientTape() as tape:
            logits = model(batch, training=True, step=optimizer.iterations)
            loss_sum, tokens = masked_cross_entropy(batch["target_out"], logits, label_smoothing)
            tokens = context.all_reduce("sum", tokens)
            loss = loss_sum / tokens
        gradients = tape.gradient(loss, model.trainable_variables)
        if replicas > 1:
            gradients = context.all_reduce("sum", [tf.convert_to_tensor(g) for g in gradients])
        # An infinite norm makes clipping yield NaN weights although the loss (computed
        # before the update) is finite; the caller checks both.
        norm = tf.linalg.global_norm(gradients)
        gradients, _ = tf.clip_by_global_norm(gradients, clip_norm, use_norm=norm)
        if replicas > 1:  # the optimizer sums the replicas' gradients once more
            gradients = [g / replicas for g in gradients]
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss, tokens, norm

    @tf.function(input_signature=list(input_signature), jit_compile=jit_compile)
    def train_step(batch):
        loss, tokens, norm = strategy.run(replica_step, args=(batch,))
        return (
            strategy.reduce("sum", loss, axis=None),
            strategy.reduce("mean", tokens, axis=None),
            strategy.reduce("mean", norm, axis=None),
        )

    return train_step


def make_eval_step(model):
    """Summed unsmoothed cross-entropy and token count of one batch (for validation loss)."""

    @tf.function(input_signature=[BATCH_SPEC])
    def eval_step(batch):
        return masked_cross_entropy(batch["target_out"], model(batch, training=False))

    return eval_step


def steps_done(optimizer: keras.optimizers.Optimizer) -> int:
    """The optimizer's step count (also under a strategy, where it is a MirroredVariable)."""
    return int(tf.convert_to_tensor(optimizer.iterations.value))
