"""Checkpoint averaging: the mean of the last N checkpoints' weights often beats each of them
(Vaswani et al., 2017; Junczys-Dowmunt et al., 2016)."""

from __future__ import annotations

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
    restore_weights,
)


def average_checkpoints(
    run_dir: str | Path, checkpoints: list[str] | None = None, last: int = 3
) -> str:
    """Averages model weights of several checkpoints into run_dir/averaged/.

    Args:
        run_dir: a run directory made by `nmt train`.
        checkpoints: checkpoint prefixes to average; default: the `last` newest ones.
        last: how many of the newest training checkpoints to average.

    Returns:
        The prefix of the averaged checkpoint (usable as `nmt translate --checkpoint`).

    Raises:
        NmtError: fewer than one checkpoint, or one that does not fit the run's model.
    """
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    tokenizer = load_tokenizer(run_dir)
    model = build_model(config.model, tokenizer.source_vocab_size, tokenizer.target_vocab_size)
    paths = checkpoints or checkpoints_in(run_dir / CHECKPOINTS)[:last]
    if not paths:
        raise NmtError(f"{run_dir}: no checkpoint to average")
    totals = [np.zeros(v.shape, np.float64) for v in model.trainable_variables]
    for path in paths:
        restore_weights(model, run_dir, path)
        for total, variable in zip(totals, model.trainable_variables):
            total += variable.numpy()
    for total, variable in zip(totals, model.trainable_variables):
        variable.assign((total / len(paths)).astype(np.float32))
    step = max(int(str(p).rsplit("-", 1)[-1]) for p in paths)
    manager = tf.train.CheckpointManager(
        tf.train.Checkpoint(model=model), str(run_dir / AVERAGED), max_to_keep=1
    )
    return manager.save(checkpoint_number=step)
