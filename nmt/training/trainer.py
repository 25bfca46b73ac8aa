"""`train()`: from a config and a run directory to checkpoints, reading top to bottom.

The loop is our own `tf.function` train step rather than `Model.fit`, so that it can resume
mid-epoch at the exact batch and later run under `tf.distribute` multi-worker strategies (which
Keras 3's `fit` does not support). Re-running on an existing run directory resumes.
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import keras
import tensorflow as tf

from nmt.atomic import atomic_write_text
from nmt.config import Config, read_saved_config, save_config, shape_differences
from nmt.data.pipeline import training_dataset
from nmt.data.text import check_parallel, read_lines
from nmt.data.tokenizer import Tokenizer, train_tokenizer
from nmt.decoding.translator import Translator
from nmt.errors import NmtError
from nmt.evaluation import corpus_bleu
from nmt.model.seq2seq import build_model
from nmt.training.checkpoint import BEST, CHECKPOINTS, TrainingProgress, restore_latest
from nmt.training.distribution import (
    Worker,
    discard_scratch,
    make_stop_vote,
    make_strategy,
    scratch_dir,
    shard_batches,
    wait_for,
    worker_of,
)
from nmt.training.losses import masked_cross_entropy
from nmt.training.schedules import WarmupDecay

Log = Callable[[str], None]
_BATCH_SPEC = {
    name: tf.TensorSpec([None, None], tf.int32) for name in ("source", "target_in", "target_out")
}


class TrainResult(NamedTuple):
    steps: int
    epochs: int
    best_bleu: float
    # "max_steps", "max_epochs", "max_minutes", "early_stopping", "signal", or "other_worker"
    # (another worker of a multi-worker run stopped, for one of the other reasons)
    stopped_because: str


def _log(message: str) -> None:
    print(message, flush=True)


def prepare_run_dir(config: Config, run_dir: Path) -> bool:
    """Creates or checks the run directory and saves the resolved config; True when resuming.

    Raises:
        NmtError: the run directory holds a model of another shape.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    saved = run_dir / "config.yaml"
    resuming = saved.is_file()
    if resuming:
        differences = shape_differences(read_saved_config(saved), config)
        if differences:
            raise NmtError(
                f"{run_dir} holds a model of another shape; use a new --run-dir or the old "
                "config. Differing fields: " + "; ".join(differences)
            )
    save_config(config, saved)
    return resuming


def prepare_tokenizer(config: Config, run_dir: Path, log: Log) -> Tokenizer:
    """Loads the run's tokenizer, training it from the training files the first time."""
    directory = run_dir / "tokenizer"
    if directory.is_dir():
        try:
            return Tokenizer.load(directory)
        except NmtError:  # incomplete (killed between two model files): train it again
            pass
    log(
        f"training the SentencePiece tokenizer ({config.tokenizer.model_type}, "
        f"{config.tokenizer.vocab_size} pieces)"
    )
    t = config.tokenizer
    return train_tokenizer(
        [config.data.train_source],
        [config.data.train_target],
        directory,
        vocab_size=t.vocab_size,
        model_type=t.model_type,
        joint=t.joint,
        character_coverage=t.character_coverage,
        byte_fallback=t.byte_fallback,
        max_training_sentences=t.max_training_sentences,
    )


def make_optimizer(config: Config) -> keras.optimizers.Optimizer:
    """Adam with the configured schedule (the train step clips the gradients)."""
    t = config.training
    schedule = WarmupDecay(
        t.learning_rate, t.warmup_steps, t.decay, t.decay_start, t.decay_steps, t.decay_rate
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
    input_signature=(_BATCH_SPEC,),
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
            logits = model(batch, training=True)
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


def steps_done(optimizer: keras.optimizers.Optimizer) -> int:
    """The optimizer's step count (also under a strategy, where it is a MirroredVariable)."""
    return int(tf.convert_to_tensor(optimizer.iterations.value))


def make_eval_step(model):
    """Summed unsmoothed cross-entropy and token count of one batch (for validation loss)."""

    @tf.function(input_signature=[_BATCH_SPEC])
    def eval_step(batch):
        return masked_cross_entropy(batch["target_out"], model(batch, training=False))

    return eval_step


@contextlib.contextmanager
def stop_requests() -> Iterator[list[int]]:
    """Turns SIGINT/SIGTERM into a request the loop honours after the current step."""
    received: list[int] = []

    def handler(signum, frame):
        received.append(signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


class Validation(NamedTuple):
    loss: float
    bleu: float


def validate(config: Config, tokenizer: Tokenizer, translator: Translator, eval_step) -> Validation:
    """Validation loss per target token and cased sacreBLEU of search outputs."""
    d = config.data
    dataset = batches(config, tokenizer, d.valid_source, d.valid_target, shuffle=False)
    loss_sum = tokens = 0.0
    for batch in dataset:
        batch_loss, batch_tokens = eval_step(batch)
        loss_sum, tokens = loss_sum + float(batch_loss), tokens + float(batch_tokens)
    sources, references = list(read_lines(d.valid_source)), list(read_lines(d.valid_target))
    if config.training.valid_max_sentences:
        sources = sources[: config.training.valid_max_sentences]
        references = references[: config.training.valid_max_sentences]
    hypotheses = translator.translate(sources, beam_size=config.training.valid_beam_size)
    return Validation(loss_sum / max(tokens, 1.0), corpus_bleu(hypotheses, references))


def _format_seconds(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class _Run(NamedTuple):
    """The objects one training run threads through its loop."""

    config: Config
    run_dir: Path
    model: keras.Model
    optimizer: keras.optimizers.Optimizer
    progress: TrainingProgress
    manager: tf.train.CheckpointManager
    best_manager: tf.train.CheckpointManager
    tokenizer: Tokenizer
    translator: Translator
    log: Log
    strategy: tf.distribute.Strategy
    worker: Worker


@contextlib.contextmanager
def _averaged_weights(run: _Run) -> Iterator[None]:
    """With `training.ema_decay`, the model holds the moving average inside the block (for
    validation and best/) and its trained weights again after it."""
    if not run.optimizer.use_ema:
        yield
        return
    variables = run.model.trainable_variables
    trained = [tf.identity(v.value) for v in variables]
    run.optimizer.finalize_variable_values(variables)
    try:
        yield
    finally:
        for variable, value in zip(variables, trained):
            variable.assign(value)


def _validate_and_keep_best(run: _Run, eval_step, step: int) -> str | None:
    """Validates, saves the best checkpoint, and returns "early_stopping" when patience ran out."""
    started = time.monotonic()
    with _averaged_weights(run):
        result = validate(run.config, run.tokenizer, run.translator, eval_step)
        improved = result.bleu > float(run.progress.best_bleu)
        if improved:
            path = _save(run, run.best_manager, step)
    tf.summary.scalar("valid/loss", result.loss, step=step)
    tf.summary.scalar("valid/bleu", result.bleu, step=step)
    p = run.progress
    if improved:
        p.best_bleu.assign(result.bleu)
        p.best_step.assign(step)
        p.validations_without_gain.assign(0)
        best = {"bleu": result.bleu, "step": step, "checkpoint": Path(path).name}
        if run.worker.is_chief:
            atomic_write_text(run.run_dir / "best.json", json.dumps(best, indent=2) + "\n")
    else:
        p.validations_without_gain.assign_add(1)
    run.log(
        f"validation at step {step}: loss {result.loss:.3f}, BLEU {result.bleu:.2f} "
        f"(best {float(p.best_bleu):.2f} at step {int(p.best_step)}"
        f"{', new best' if improved else ''}) in {time.monotonic() - started:.1f}s"
    )
    patience = run.config.training.early_stopping_patience
    if patience and int(p.validations_without_gain) >= patience:
        return "early_stopping"
    return None


def save_checkpoint(manager: tf.train.CheckpointManager, step: int) -> str:
    """Saves; a failed write (a full disk, say) becomes a clear error, and the checkpoint
    index still names the previous complete checkpoint, which TensorFlow updates last."""
    try:
        return manager.save(checkpoint_number=step)
    except (tf.errors.OpError, OSError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise NmtError(
            f"could not write checkpoint {step} to {manager.directory} ({reason}); the previous "
            f"checkpoint ({manager.latest_checkpoint}) is intact. Free some space and run the "
            "same command again to resume"
        ) from None


def _save(run: _Run, manager: tf.train.CheckpointManager, step: int) -> str:
    """Every worker saves (tf.distribute requires it); only the chief's copy is kept."""
    path = save_checkpoint(manager, step)
    discard_scratch(run.run_dir, run.worker)
    return path


def _recall_best_bleu(run: _Run) -> None:
    """After a crash, best/ may be newer than the checkpoint resumed from: never overwrite it
    with a worse model."""
    path = run.run_dir / "best.json"
    if path.is_file():
        try:
            best = json.loads(path.read_text(encoding="utf-8"))
            if float(best["bleu"]) > float(run.progress.best_bleu):
                run.progress.best_bleu.assign(float(best["bleu"]))
                run.progress.best_step.assign(int(best["step"]))
        except (ValueError, KeyError, TypeError):
            run.log(f"nmt: warning: {path} is unreadable; ignoring it")


def _limit_reached(config: Config, step: int, seconds: float) -> str | None:
    t = config.training
    if t.max_steps and step >= t.max_steps:
        return "max_steps"
    if t.max_minutes and seconds >= 60 * t.max_minutes:
        return "max_minutes"
    return None


def batches(
    config: Config,
    tokenizer: Tokenizer,
    source: str,
    target: str,
    seed: int = 0,
    shuffle: bool = True,
) -> tf.data.Dataset:
    """`training_dataset` with the config's data settings (one epoch)."""
    d = config.data
    return training_dataset(
        source,
        target,
        tokenizer,
        max_source_length=d.max_source_length,
        max_target_length=d.max_target_length,
        batch_size=d.batch_size,
        batch_tokens=d.batch_tokens,
        bucket_width=d.bucket_width,
        shuffle_buffer=d.shuffle_buffer,
        seed=seed,
        shuffle=shuffle,
    )


def _epoch_batches(run: _Run, epoch: int):
    """Epoch `epoch` from the step where the run stopped (the order depends on seed + epoch),
    each replica's batches as `run.strategy` distributes them."""
    d = run.config.data

    def replica_batches(context: tf.distribute.InputContext) -> tf.data.Dataset:
        dataset = batches(
            run.config,
            run.tokenizer,
            d.train_source,
            d.train_target,
            seed=run.config.training.seed + epoch,
        )
        local_replicas = context.num_replicas_in_sync // context.num_input_pipelines
        dataset = shard_batches(
            dataset,
            context.num_replicas_in_sync,
            first=context.input_pipeline_id * local_replicas,
            count=local_replicas,
        )
        return dataset.skip(int(run.progress.batches_in_epoch) * local_replicas)

    return run.strategy.distribute_datasets_from_function(replica_batches)


def _train_loop(run: _Run, signals: list[int]) -> str:
    """Runs epochs until a limit, early stopping or a signal; returns why it stopped."""
    t = run.config.training
    has_valid = bool(run.config.data.valid_source and run.config.data.valid_target)
    train_step = None  # made for the distributed dataset's element spec
    eval_step = make_eval_step(run.model)
    # Workers must stop after the same step, or one would wait forever for the others.
    vote = make_stop_vote(run.strategy) if run.worker.count > 1 else bool
    p = run.progress
    clock_start = time.monotonic() - float(p.train_seconds)
    window_tokens, window_start, window_loss, window_steps = 0.0, time.monotonic(), 0.0, 0
    # On a terminal, a live bar between the log lines (which stay the record in files).
    bar = (
        keras.utils.Progbar(t.max_steps or None, stateful_metrics=["loss", "tgt tok/s"])
        if sys.stdout.isatty()
        else None
    )
    while True:
        epoch = int(p.epoch)
        if t.max_epochs and epoch >= t.max_epochs:
            return "max_epochs"
        limit = _limit_reached(run.config, steps_done(run.optimizer), float(p.train_seconds))
        if vote(bool(limit)):  # a finished run that is started again stops at once
            return limit or "other_worker"
        patience = t.early_stopping_patience
        if patience and int(p.validations_without_gain) >= patience:
            return "early_stopping"
        batches_at_start = int(p.batches_in_epoch)
        dataset = _epoch_batches(run, epoch)
        if train_step is None:
            train_step = make_train_step(
                run.model,
                run.optimizer,
                t.label_smoothing,
                t.clip_norm,
                t.jit_compile,
                run.strategy,
                input_signature=[dataset.element_spec],
            )
        for batch in dataset:
            loss, tokens, gradient_norm = train_step(batch)
            step, loss = steps_done(run.optimizer), float(loss)
            if not (math.isfinite(loss) and math.isfinite(float(gradient_norm))):
                raise NmtError(
                    f"training diverged: the loss is {loss} (gradient norm "
                    f"{float(gradient_norm)}) at step {step}; nothing was saved "
                    f"after the last good checkpoint in {run.run_dir / CHECKPOINTS}. Lower "
                    "training.learning_rate or training.clip_norm and run again to resume"
                )
            p.batches_in_epoch.assign_add(1)
            p.train_seconds.assign(time.monotonic() - clock_start)
            window_tokens += float(tokens)
            window_loss += loss
            window_steps += 1
            if bar is not None:
                rate = window_tokens / max(time.monotonic() - window_start, 1e-9)
                bar.update(step, [("loss", window_loss / window_steps), ("tgt tok/s", rate)])
            if step % t.log_every == 0:
                if bar is not None:
                    print()
                seconds = time.monotonic() - window_start
                learning_rate = float(run.optimizer.learning_rate)
                tf.summary.scalar("train/loss", window_loss / window_steps, step=step)
                tf.summary.scalar("train/learning_rate", learning_rate, step=step)
                tf.summary.scalar(
                    "train/target_tokens_per_second", window_tokens / seconds, step=step
                )
                run.log(
                    f"step {step:>7} | epoch {epoch + 1} | loss {window_loss / window_steps:.3f}"
                    f" | lr {learning_rate:.2e} | {window_tokens / seconds:,.0f} tgt tok/s"
                    f" | {_format_seconds(float(p.train_seconds))}"
                )
            stopped = None
            if step % t.checkpoint_every == 0:  # before validation, which may be slow
                _save(run, run.manager, step)
            if has_valid and step % t.validate_every == 0:
                stopped = _validate_and_keep_best(run, eval_step, step)
            stopped = stopped or _limit_reached(run.config, step, float(p.train_seconds))
            if signals:
                stopped = "signal"
            if vote(bool(stopped)):
                stopped = stopped or "other_worker"
            if step % t.log_every == 0 or step % t.validate_every == 0:
                window_tokens, window_loss, window_steps = 0.0, 0.0, 0
                window_start = time.monotonic()
            if stopped:
                return stopped
        if int(p.batches_in_epoch) == batches_at_start == 0:
            raise NmtError(
                f"no training pairs in {run.config.data.train_source} survive the length filter "
                "(data.max_source_length / data.max_target_length) or they are all empty"
            )
        p.epoch.assign_add(1)
        p.batches_in_epoch.assign(0)


def train(config: Config, run_dir: str | Path, log: Log = _log) -> TrainResult:
    """Trains (or resumes training of) a model in `run_dir`.

    Args:
        config: the experiment.
        run_dir: folder for the config, tokenizer, checkpoints and TensorBoard logs; if it
            already holds a run of the same model shape, training resumes where it stopped.
        log: receives one line per progress report.

    Returns:
        How far training got and why it stopped.

    Raises:
        NmtError: bad data files, a run directory of another model, or a diverged loss.
    """
    run_dir = Path(run_dir)
    d, t = config.data, config.training
    if not (d.train_source and d.train_target):
        raise NmtError("the config must set data.train_source and data.train_target")
    has_valid = bool(d.valid_source and d.valid_target)
    for pair in [(d.train_source, d.train_target)] + has_valid * [(d.valid_source, d.valid_target)]:
        check_parallel(*pair)
        for path in pair:
            for _ in read_lines(path):  # invalid UTF-8 is reported now, not mid-training
                pass
    strategy = make_strategy(t.distribution)
    worker = worker_of(strategy)
    if worker.is_chief:
        prepare_run_dir(config, run_dir)
        tokenizer = prepare_tokenizer(config, run_dir, log)
    else:
        tokenizer = wait_for(run_dir / "tokenizer", Tokenizer.load, "the tokenizer")
    keras.utils.set_random_seed(t.seed)
    with strategy.scope():
        model = build_model(config.model, tokenizer.source_vocab_size, tokenizer.target_vocab_size)
        optimizer = make_optimizer(config)
        optimizer.build(model.trainable_variables)
    progress = TrainingProgress()
    # Dropout seed states are saved too, so a resumed run draws the same masks.
    checkpoint = tf.train.Checkpoint(
        model=model, optimizer=optimizer, progress=progress, rng=list(model.non_trainable_variables)
    )
    own_dir = scratch_dir(run_dir, worker)
    run = _Run(
        config,
        run_dir,
        model,
        optimizer,
        progress,
        tf.train.CheckpointManager(checkpoint, str(own_dir / CHECKPOINTS), t.keep_checkpoints),
        tf.train.CheckpointManager(tf.train.Checkpoint(model=model), str(own_dir / BEST), 1),
        tokenizer,
        Translator(model, tokenizer, config.decoding, d.max_source_length),
        log,
        strategy,
        worker,
    )
    chief_checkpoints = tf.train.CheckpointManager(
        checkpoint, str(run_dir / CHECKPOINTS), t.keep_checkpoints
    )
    restored = restore_latest(checkpoint, chief_checkpoints)
    _recall_best_bleu(run)
    if restored:
        log(
            f"resuming from {restored}: step {steps_done(optimizer)}, epoch "
            f"{int(progress.epoch) + 1}, batch {int(progress.batches_in_epoch)}"
        )
    log(f"model: {model.count_params():,} parameters; run directory {run_dir}")
    if worker.count > 1:
        log(f"worker {worker.index} of {worker.count}, {strategy.num_replicas_in_sync} replicas")
    writer = (
        tf.summary.create_file_writer(str(run_dir / "logs"))
        if worker.is_chief
        else tf.summary.create_noop_writer()
    )
    first_step = steps_done(optimizer)
    with stop_requests() as signals, writer.as_default():
        stopped = _train_loop(run, signals)
        step = steps_done(optimizer)
        trained = step > first_step  # a finished run started again has nothing new to validate
        if stopped != "signal" and has_valid and trained and step % t.validate_every:
            _validate_and_keep_best(run, make_eval_step(model), step)
        if run.manager.latest_checkpoint != str(own_dir / CHECKPOINTS / f"ckpt-{step}"):
            _save(run, run.manager, step)
    writer.close()
    log(f"stopped at step {step} ({stopped}); checkpoints in {run_dir / CHECKPOINTS}")
    return TrainResult(step, int(progress.epoch), float(progress.best_bleu), stopped)
