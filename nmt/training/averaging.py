"""Checkpoint averaging: the mean of the last N checkpoints' weights often beats each of them
(Vaswani et al., 2017; Junczys-Dowmunt et al., 2016).

With `training.ema_decay` the optimizer keeps an exponential moving average of the weights in
every training checkpoint, and the average of those moving averages is what gets written: the
raw weights of a run trained for its moving average are the noisier of the two.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tensorflow as tf

from nmt.errors import NmtError
from nmt.model.seq2seq import build_model
from nmt.run_directory import (
    AVERAGED,
    CHECKPOINTS,
    checkpoints_in,
    load_tokenizer,
    read_config,
    require_checkpoint,
    restore_weights,
)
from nmt.training.steps import make_optimizer

__all__ = ["AVERAGED", "average_checkpoints"]

_STEP = re.compile(r"-(\d+)$")


def _say(message: str) -> None:
    print(message, file=sys.stderr)


def average_checkpoints(
    run_dir: str | Path,
    checkpoints: list[str] | None = None,
    last: int = 3,
    report: Callable[[str], None] = _say,
) -> str:
    """Averages model weights of several checkpoints into run_dir/averaged/.

    Args:
        run_dir: a run directory made by `nmt train`.
        checkpoints: checkpoint prefixes to average; default: the `last` newest ones.
        last: how many of the newest training checkpoints to average.
        report: receives one line saying whether moving averages or raw weights were averaged.

    Returns:
        The prefix of the averaged checkpoint (usable as `nmt translate --checkpoint`), numbered
        with the highest step of its inputs.

    Raises:
        NmtError: no checkpoint, a name that does not end in a step number, or a checkpoint that
            does not fit the run's model.
    """
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    tokenizer = load_tokenizer(run_dir)
    if checkpoints:
        paths = [require_checkpoint(run_dir, path) for path in checkpoints]
    else:
        paths = checkpoints_in(run_dir / CHECKPOINTS)[:last]
    if not paths:
        raise NmtError(f"{run_dir}: no checkpoint to average")
    step = max(_step_of(path) for path in paths)
    # Every weight is restored from a checkpoint below: no need for param_init's pass over them.
    model = build_model(
        config.model, tokenizer.source_vocab_size, tokenizer.target_vocab_size, initialize=False
    )
    optimizer = None
    if config.training.ema_decay > 0:
        optimizer = make_optimizer(config.training)
        optimizer.build(model.trainable_variables)
    totals = [np.zeros(v.shape, np.float64) for v in model.trainable_variables]
    raw = []
    for path in paths:
        if not _restore_moving_average(model, optimizer, path):
            restore_weights(model, run_dir, path)
            raw.append(path)
        for total, variable in zip(totals, model.trainable_variables):
            total += variable.numpy()
    for total, variable in zip(totals, model.trainable_variables):
        variable.assign((total / len(paths)).astype(np.float32))
    report(_what_was_averaged(config.training.ema_decay, len(paths), raw))
    manager = tf.train.CheckpointManager(
        tf.train.Checkpoint(model=model), str(run_dir / AVERAGED), max_to_keep=1
    )
    return manager.save(checkpoint_number=step)


def _step_of(path: str) -> int:
    match = _STEP.search(Path(path).name)
    if match is None:
        raise NmtError(
            f"checkpoint {path} does not end in a step number (ckpt-STEP); the average is "
            "numbered with the highest step of its inputs, so rename it or leave it out"
        )
    return int(match.group(1))


def _restore_moving_average(model, optimizer, path: str) -> bool:
    """Loads a training checkpoint's moving average into `model`; False if it holds none.

    Only training checkpoints (checkpoints/) carry the optimizer and its moving average;
    best/ and averaged/ hold model weights alone.
    """
    if optimizer is None:
        return False
    try:
        status = tf.train.Checkpoint(model=model, optimizer=optimizer).read(path)
        status.expect_partial().assert_existing_objects_matched()
    except (tf.errors.OpError, AssertionError, ValueError):
        return False
    optimizer.finalize_variable_values(model.trainable_variables)
    return True


def _what_was_averaged(ema_decay: float, count: int, raw: list[str]) -> str:
    if ema_decay <= 0:
        return f"averaged the weights of {count} checkpoints (training.ema_decay is off)"
    ema = f"the moving averages of the weights (training.ema_decay {ema_decay})"
    if not raw:
        return f"averaged {ema} of {count} checkpoints"
    return (
        f"averaged {count} checkpoints: {ema} where a training checkpoint holds them, the "
        f"weights as saved in {', '.join(raw)} (best/ and averaged/ keep no optimizer state; "
        "best/ already holds the moving average)"
    )
