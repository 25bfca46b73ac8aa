"""Validation during training: loss and BLEU on the same sentences, best/, early stopping."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import keras
import tensorflow as tf

from nmt.config import Config, ValidationSetConfig
from nmt.data.text import read_parallel
from nmt.data.tokenizer import Tokenizer
from nmt.decoding.translator import Translator
from nmt.evaluation import corpus_bleu
from nmt.run_directory import Best, TrainingProgress, read_best, write_best
from nmt.training.epochs import batches
from nmt.training.steps import make_eval_step


class ValidationSet(NamedTuple):
    """The validation pairs that both the loss and BLEU use."""

    sources: list[str]
    references: list[str]
    left_out: int  # pairs over the length limits or with an empty side


class Validation(NamedTuple):
    loss: float  # per target token, unsmoothed
    bleu: float  # cased sacreBLEU of the search's outputs


def validation_set(
    config: Config, tokenizer: Tokenizer, files: ValidationSetConfig | None = None
) -> ValidationSet:
    """The pairs of a validation set (default: the first) that the training pipeline would keep
    (within the length limits, both sides non-empty), cut to `training.valid_max_sentences`, so
    loss and BLEU see the same ones."""
    d = config.data
    files = files or d.validation_sets[0]
    pairs = list(read_parallel(files.source, files.target))
    source_ids = tokenizer.encode_source([source for source, _ in pairs])
    target_ids = tokenizer.encode_target([target for _, target in pairs])
    kept = [
        pair
        for pair, s, t in zip(pairs, source_ids, target_ids)
        if 0 < len(s) <= d.max_source_length and 0 < len(t) <= d.max_target_length
    ]
    sources, references = [s for s, _ in kept], [t for _, t in kept]
    left_out = len(pairs) - len(kept)
    limit = config.training.valid_max_sentences
    if limit:
        sources, references = sources[:limit], references[:limit]
    return ValidationSet(sources, references, left_out)


@contextlib.contextmanager
def averaged_weights(model: keras.Model, optimizer: keras.optimizers.Optimizer) -> Iterator[None]:
    """With `training.ema_decay`, the model holds the moving average inside the block (for
    validation and best/) and its trained weights again after it."""
    if not optimizer.use_ema:
        yield
        return
    variables = model.trainable_variables
    trained = [tf.identity(v.value) for v in variables]
    optimizer.finalize_variable_values(variables)
    try:
        yield
    finally:
        for variable, value in zip(variables, trained):
            variable.assign(value)


class Validator:
    """Validates every `training.validate_every` steps, keeps the best model in best/ (and
    best.json), and counts validations without a better BLEU for early stopping.

    The counters live in `progress`, which every checkpoint saves: the trainer saves after
    validating, so a restarted run knows its best score and its patience.
    """

    def __init__(
        self,
        config: Config,
        tokenizer: Tokenizer,
        model: keras.Model,
        optimizer: keras.optimizers.Optimizer,
        progress: TrainingProgress,
        save_best: Callable[[int], str],
        log: Callable[[str], None],
    ):
        self.config = config
        self.tokenizer = tokenizer
        self.model = model
        self.optimizer = optimizer
        self.progress = progress
        self.save_best = save_best
        self.log = log
        self.translator = Translator(
            model, tokenizer, config.decoding, config.data.max_source_length
        )
        self.eval_step = make_eval_step(model)
        self.sets = [
            (files, validation_set(config, tokenizer, files))
            for files in config.data.validation_sets
        ]

    def validate(self, files: ValidationSetConfig, pairs: ValidationSet) -> Validation:
        """Validation loss per target token and cased sacreBLEU of search outputs."""
        dataset = batches(
            self.config.data,
            self.tokenizer,
            files.source,
            files.target,
            shuffle=False,
            max_pairs=self.config.training.valid_max_sentences,
        )
        loss_sum = tokens = 0.0
        for batch in dataset:
            batch_loss, batch_tokens = self.eval_step(batch)
            loss_sum, tokens = loss_sum + float(batch_loss), tokens + float(batch_tokens)
        hypotheses = self.translator.translate(
            pairs.sources, beam_size=self.config.training.valid_beam_size
        )
        return Validation(loss_sum / max(tokens, 1.0), corpus_bleu(hypotheses, pairs.references))

    def __call__(self, step: int, run_dir: Path, is_chief: bool) -> None:
        """Validates at `step`, updating best/, best.json and the early-stopping counter."""
        started = time.monotonic()
        for index, (files, pairs) in enumerate(self.sets):
            if pairs.left_out:
                where = f" of {files.label}" if index else ""
                self.log(
                    f"nmt: warning: {pairs.left_out} validation pairs{where} are over "
                    "data.max_source_length / data.max_target_length or have an empty side; "
                    f"validating on the other {len(pairs.sources)}"
                )
        with averaged_weights(self.model, self.optimizer):
            results = [self.validate(files, pairs) for files, pairs in self.sets]
            result = results[0]  # the first set decides best/ and early stopping
            improved = result.bleu > float(self.progress.best_bleu)
            if improved:
                path = self.save_best(step)
        tf.summary.scalar("valid/loss", result.loss, step=step)
        tf.summary.scalar("valid/bleu", result.bleu, step=step)
        for (files, _), other in zip(self.sets[1:], results[1:]):
            tf.summary.scalar(f"valid/{files.label}/loss", other.loss, step=step)
            tf.summary.scalar(f"valid/{files.label}/bleu", other.bleu, step=step)
            self.log(
                f"validation of {files.label} at step {step}: loss {other.loss:.3f}, "
                f"BLEU {other.bleu:.2f}"
            )
        p = self.progress
        if improved:
            p.best_bleu.assign(result.bleu)
            p.best_step.assign(step)
            p.validations_without_gain.assign(0)
            if is_chief:
                write_best(run_dir, Best(result.bleu, step, Path(path).name))
        else:
            p.validations_without_gain.assign_add(1)
        self.log(
            f"validation at step {step}: loss {result.loss:.3f}, BLEU {result.bleu:.2f} "
            f"(best {float(p.best_bleu):.2f} at step {int(p.best_step)}"
            f"{', new best' if improved else ''}) in {time.monotonic() - started:.1f}s"
        )

    def out_of_patience(self) -> bool:
        """True once `training.early_stopping_patience` validations in a row brought no gain."""
        patience = self.config.training.early_stopping_patience
        return bool(patience) and int(self.progress.validations_without_gain) >= patience


def recall_best_bleu(progress: TrainingProgress, run_dir: Path) -> None:
    """After a crash, best/ may be newer than the checkpoint resumed from: never overwrite it
    with a worse model."""
    best = read_best(run_dir)
    if best is not None and best.bleu > float(progress.best_bleu):
        progress.best_bleu.assign(best.bleu)
        progress.best_step.assign(best.step)
