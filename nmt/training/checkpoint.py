"""Checkpoints of a run directory, on `tf.train.CheckpointManager`.

    run_dir/checkpoints/   the last N training checkpoints (model, optimizer, progress)
    run_dir/best/          model weights of the best validation BLEU so far
    run_dir/averaged/      the mean of several checkpoints' weights (`nmt average`)

TensorFlow writes a checkpoint's files before it atomically rewrites the `checkpoint` index,
so a kill mid-save leaves the index pointing at the previous complete checkpoint. A checkpoint
that still fails to read (truncated or corrupted by hand) is reported and skipped for the one
before it.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import tensorflow as tf

from nmt.errors import NmtError

CHECKPOINTS = "checkpoints"
BEST = "best"
AVERAGED = "averaged"

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


_FILE_ENDING = re.compile(r"\.(index|data-\d+-of-\d+)$")


def checkpoint_prefix(path: str | Path) -> str:
    """The prefix TensorFlow reads: `ckpt-800.index` and `ckpt-800.data-00000-of-00001` are both
    files of checkpoint `ckpt-800`, and users pass whichever they see in `ls`."""
    return _FILE_ENDING.sub("", str(path))


def known_checkpoints(run_dir: str | Path) -> list[str]:
    """Every checkpoint prefix a run directory lists: best/, checkpoints/, averaged/."""
    run_dir = Path(run_dir)
    return [
        path
        for folder in (BEST, CHECKPOINTS, AVERAGED)
        for path in checkpoints_in(run_dir / folder)
    ]


def require_checkpoint(run_dir: str | Path, path: str | Path) -> str:
    """The prefix of a checkpoint that exists, or an error naming those that do.

    Checked before TensorFlow reads it, which on a missing file logs dozens of lines of warnings
    and fails with a message about file patterns.

    Raises:
        NmtError: `path` is no checkpoint.
    """
    prefix = checkpoint_prefix(path)
    if Path(prefix + ".index").is_file():
        return prefix
    existing = known_checkpoints(run_dir)
    listing = ", ".join(existing) if existing else "none yet (train first with `nmt train`)"
    raise NmtError(f"no checkpoint {path}; the checkpoints of {run_dir}: {listing}")


def restore_weights(model: tf.Module, run_dir: str | Path, checkpoint: str | None = None) -> str:
    """Loads model weights for inference: a given checkpoint, else the best, else the latest.

    Falling back to the latest says so on stderr: it is not the checkpoint users expect.

    Raises:
        NmtError: there is no checkpoint, or it does not fit the model (wrong vocabulary, say).
    """
    run_dir = Path(run_dir)
    best = []
    if checkpoint is not None:
        candidates = [require_checkpoint(run_dir, checkpoint)]
    else:
        best = checkpoints_in(run_dir / BEST)
        candidates = best + checkpoints_in(run_dir / CHECKPOINTS)
    if not candidates:
        raise NmtError(f"{run_dir}: no checkpoint yet; train first with `nmt train`")
    problems = []
    for path in candidates:
        try:
            status = tf.train.Checkpoint(model=model).read(path).expect_partial()
            status.assert_existing_objects_matched()
        except _READ_ERRORS as error:
            first = (
                str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            )
            problems.append(f"{path}: {first}")
            continue
        if checkpoint is None and path not in best:
            why = "best/ could not be read" if best else "no best/ checkpoint (no validation yet)"
            print(f"nmt: {why}; using the newest training checkpoint {path}", file=sys.stderr)
        return path
    raise NmtError(
        "cannot load the model weights (do the tokenizer and config match the checkpoint?): "
        + "; ".join(problems)
    )
