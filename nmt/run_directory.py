"""A run directory: what `nmt train` writes and what every later command reads.

    RUN/config.yaml     the resolved config (absolute data paths; reusable with --config)
    RUN/tokenizer/      the SentencePiece model(s)
    RUN/checkpoints/    the last N training checkpoints: model, optimizer, progress, dropout RNG
    RUN/best/           model weights of the best validation BLEU so far
    RUN/best.json       {"bleu", "step", "checkpoint"} of best/, for people and scripts
    RUN/averaged/       what `nmt average` writes
    RUN/train.log       the timestamped training log
    RUN/logs/           TensorBoard summaries

Training, decoding, averaging, export, serving and scoring all read it through this module.
TensorFlow writes a checkpoint's files before it atomically rewrites the `checkpoint` index, so a
kill mid-save leaves the index pointing at the previous complete checkpoint. A checkpoint that
still fails to read (truncated or corrupted by hand) is reported and skipped for the one before.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import tensorflow as tf

from nmt.atomic import atomic_write_text
from nmt.config import Config, read_saved_config, resume_changes, save_config
from nmt.data.tokenizer import Tokenizer
from nmt.errors import NmtError

CONFIG = "config.yaml"
TOKENIZER = "tokenizer"
CHECKPOINTS = "checkpoints"
BEST = "best"
BEST_JSON = "best.json"
AVERAGED = "averaged"
TRAIN_LOG = "train.log"
SUMMARIES = "logs"

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


class Best(NamedTuple):
    """What best.json says about best/."""

    bleu: float
    step: int
    checkpoint: str


def read_config(run_dir: str | Path) -> Config:
    """The config a run was trained with.

    Raises:
        NmtError: not a run directory (no config.yaml), or an unreadable one.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise NmtError(f"{run_dir}: no such run directory")
    return read_saved_config(run_dir / CONFIG)


def load_tokenizer(run_dir: str | Path) -> Tokenizer:
    """The run's tokenizer (NmtError when it is missing or unreadable)."""
    return Tokenizer.load(Path(run_dir) / TOKENIZER)


def prepare(config: Config, run_dir: str | Path, log: Callable[[str], None]) -> list[str]:
    """Creates or checks the run directory and saves the config.

    A run directory that already holds a config is resumed: changes of fields that shape the
    trained weights are refused, changes of the data order are accepted with a warning (the
    trainer restarts the current epoch in the new order), and changes of fields that act only
    at initialization are accepted and said to have no effect.

    Returns:
        The changed fields that decide the data order ("key: old -> new"; empty for a new run).

    Raises:
        NmtError: the new config changes a field that shapes the model or tokenizer.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    saved = run_dir / CONFIG
    order_changes: list[str] = []
    if saved.is_file():
        changes = resume_changes(read_saved_config(saved), config)
        if changes.shape:
            raise NmtError(
                f"{run_dir} holds a model of another shape; use a new --run-dir or the old "
                "config. Differing fields: " + "; ".join(changes.shape)
            )
        for change in changes.init:
            log(f"nmt: note: {change} acts only when a run starts; the resumed run ignores it")
        order_changes = changes.data_order
        if order_changes:
            log(
                "nmt: warning: " + "; ".join(order_changes) + " changes the order of the "
                "training batches, so a resumed run starts its current epoch again in the new order"
            )
    save_config(config, saved)
    return order_changes


def read_best(run_dir: str | Path) -> Best | None:
    """best.json's contents, or None when there is none (or it is unreadable, with a warning)."""
    path = Path(run_dir) / BEST_JSON
    if not path.is_file():
        return None
    try:
        best = json.loads(path.read_text(encoding="utf-8"))
        return Best(float(best["bleu"]), int(best["step"]), str(best["checkpoint"]))
    except (ValueError, KeyError, TypeError):
        print(f"nmt: warning: {path} is unreadable; ignoring it", file=sys.stderr)
        return None


def write_best(run_dir: str | Path, best: Best) -> None:
    """Writes best.json atomically."""
    atomic_write_text(Path(run_dir) / BEST_JSON, json.dumps(best._asdict(), indent=2) + "\n")


def checkpoints_in(folder: str | Path) -> list[str]:
    """Checkpoint prefixes listed in a folder's index, newest first."""
    state = tf.train.get_checkpoint_state(str(folder))
    return list(reversed(state.all_model_checkpoint_paths)) if state else []


def restore_latest(
    checkpoint: tf.train.Checkpoint, manager: tf.train.CheckpointManager
) -> str | None:
    """Restores the newest readable checkpoint; returns its path, or None for a fresh run."""
    for path in reversed(manager.checkpoints):
        try:
            checkpoint.read(path).assert_existing_objects_matched()
            return path
        except _READ_ERRORS as error:
            print(
                f"nmt: warning: checkpoint {path} is unreadable ({_first_line(error)}); "
                "trying the previous one",
                file=sys.stderr,
            )
    if manager.checkpoints:
        raise NmtError(
            f"no checkpoint in {manager.directory} could be read; remove the folder to start over"
        )
    return None


def save_checkpoint(manager: tf.train.CheckpointManager, step: int) -> str:
    """Saves; a failed write (a full disk, say) becomes a clear error, and the checkpoint
    index still names the previous complete checkpoint, which TensorFlow updates last."""
    try:
        return manager.save(checkpoint_number=step)
    except (tf.errors.OpError, OSError) as error:
        raise NmtError(
            f"could not write checkpoint {step} to {manager.directory} ({_first_line(error)}); "
            f"the previous checkpoint ({manager.latest_checkpoint}) is intact. Free some space "
            "and run the same command again to resume"
        ) from None


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
            problems.append(f"{path}: {_first_line(error)}")
            continue
        if checkpoint is None and path not in best:
            why = "best/ could not be read" if best else "no best/ checkpoint (no validation yet)"
            print(f"nmt: {why}; using the newest training checkpoint {path}", file=sys.stderr)
        return path
    raise NmtError(
        "cannot load the model weights (do the tokenizer and config match the checkpoint?): "
        + "; ".join(problems)
    )


class TrainedModel(NamedTuple):
    """What inference needs from a run: its config, tokenizer and restored model(s)."""

    config: Config
    tokenizer: Tokenizer
    models: list  # of Seq2Seq, one per checkpoint
    checkpoints: list[str]  # the prefix each model was restored from


def load_trained(
    run_dir: str | Path,
    checkpoints: Sequence[str | None] | str | None = None,
    compute_dtype: str | None = None,
) -> TrainedModel:
    """Builds the run's model and restores its weights, once per checkpoint.

    Args:
        run_dir: the run whose config and tokenizer are used.
        checkpoints: a checkpoint prefix, several (an ensemble; they may come from other runs
            with the same model config and tokenizer), or None for the best (else the latest).
        compute_dtype: "float32", "bfloat16" or "auto" instead of the config's; the weights
            are float32 either way, so any checkpoint computes in any of them.

    Raises:
        NmtError: not a run directory, no checkpoint, or a tokenizer/model mismatch.
    """
    from nmt.model.seq2seq import build_model  # the model pulls in Keras; config reads do not

    config = read_config(run_dir)
    if compute_dtype is not None:
        model_config = dataclasses.replace(config.model, compute_dtype=compute_dtype)
        config = dataclasses.replace(config, model=model_config)
    tokenizer = load_tokenizer(run_dir)
    if checkpoints is None or isinstance(checkpoints, str):
        checkpoints = [checkpoints]
    models, restored = [], []
    for path in checkpoints:
        model = build_model(
            config.model, tokenizer.source_vocab_size, tokenizer.target_vocab_size, initialize=False
        )
        restored.append(restore_weights(model, run_dir, path))
        _check_same_tokenizer(run_dir, restored[-1])
        models.append(model)
    return TrainedModel(config, tokenizer, models, restored)


def _check_same_tokenizer(run_dir: str | Path, checkpoint: str | Path) -> None:
    """Refuses a checkpoint of another run whose tokenizer differs from `run_dir`'s.

    An ensemble may take checkpoints from other runs (other seeds, say). Their weights load
    into this run's model whenever the vocabulary sizes agree, so a run whose SentencePiece
    model differs would decode with the wrong piece ids and say nothing; compare the files.
    """
    other = Path(checkpoint).parent.parent  # RUN/checkpoints/ckpt-N, RUN/averaged/ckpt-N, ...
    ours = Path(run_dir) / TOKENIZER
    theirs = other / TOKENIZER
    if not theirs.is_dir() or theirs.resolve() == ours.resolve():
        return
    names = sorted(
        {p.name for p in ours.glob("*.model")} | {p.name for p in theirs.glob("*.model")}
    )
    for name in names:
        a, b = ours / name, theirs / name
        if not (a.is_file() and b.is_file() and a.read_bytes() == b.read_bytes()):
            raise NmtError(
                f"{checkpoint} belongs to {other}, whose tokenizer ({theirs}) differs from "
                f"{run_dir}'s ({name}): its piece ids would not match this run's. Decode "
                "together only runs trained with the same tokenizer (copy the first run's "
                "tokenizer/ into the others' run directories before training them)"
            )


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
