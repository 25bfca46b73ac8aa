"""Checkpoints of a run directory, on `tf.train.CheckpointManager`.

    run_dir/checkpoints/   the last N training checkpoints (model, optimizer, progress)
    run_dir/best/          model weights of the best validation BLEU so far

TensorFlow writes a checkpoint's files before it atomically rewrites the `checkpoint` index,
so a kill mid-save leaves the index pointing at the previous complete checkpoint. A checkpoint
that still fails to read (truncated or corrupted by hand) is reported and skipped for the one
before it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import tensorflow as tf

from nmt.errors import NmtError

CHECKPOINTS = "checkpoints"
BEST = "best"

# Each of these has been seen from a truncated or foreign checkpoint file.
_READ_ERRORS = (tf.errors.OpError, ValueError, AssertionError, IndexError, OSError)


class TrainingProgress(tf.Module):
    """Counters a resumed run needs besides the weights; saved in every checkpoint."""

    def __init__(self):
        super().__init__(name="progress")
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.batches_in_epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.best_bleu = tf.Variable(-1.0, dtype=tf.float64, trainable=False)
        self.best_step = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.validations_without_gain = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.train_seconds = tf.Variable(0.0, dtype=tf.float64, trainable=False)


def restore_latest(
    checkpoint: tf.train.Checkpoint, manager: tf.train.CheckpointManager
) -> str | None:
    """Restores the newest readable checkpoint; returns its path, or None for a fresh run."""
    for path in reversed(manager.checkpoints):
        try:
            checkpoint.read(path).assert_existing_objects_matched()
            return path
        except _READ_ERRORS as error:
            message = str(error).splitlines()[0] if str(error) else type(error).__name__
            print(
                f"nmt: warning: checkpoint {path} is unreadable ({message}); "
                "trying the previous one",
                file=sys.stderr,
            )
    if manager.checkpoints:
        raise NmtError(
            f"no checkpoint in {manager.directory} could be read; remove the folder to start over"
        )
    return None


def checkpoints_in(folder: str | Path) -> list[str]:
    """Checkpoint prefixes listed in a folder's index, newest first."""
    state = tf.train.get_checkpoint_state(str(folder))
    return list(reversed(state.all_model_checkpoint_paths)) if state else []


def restore_weights(model: tf.Module, run_dir: str | Path, checkpoint: str | None = None) -> str:
    """Loads model weights for inference: a given checkpoint, else the best, else the latest.

    Raises:
        NmtError: there is no checkpoint, or it does not fit the model (wrong vocabulary, say).
    """
    run_dir = Path(run_dir)
    if checkpoint is not None:
        candidates = [checkpoint]
    else:
        candidates = checkpoints_in(run_dir / BEST) + checkpoints_in(run_dir / CHECKPOINTS)
    if not candidates:
        raise NmtError(f"{run_dir}: no checkpoint yet; train first with `nmt train`")
    problems = []
    for path in candidates:
        try:
            status = tf.train.Checkpoint(model=model).read(path).expect_partial()
            status.assert_existing_objects_matched()
            return path
        except _READ_ERRORS as error:
            first = (
                str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            )
            problems.append(f"{path}: {first}")
    raise NmtError(
        "cannot load the model weights (do the tokenizer and config match the checkpoint?): "
        + "; ".join(problems)
    )
