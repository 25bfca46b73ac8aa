"""`train()`: from a config and a run directory to checkpoints, reading top to bottom.

The loop is our own `tf.function` train step (nmt/training/steps.py), so it can resume mid-epoch
at the exact batch and run under `tf.distribute` multi-worker strategies. After each step it
calls small hooks: the progress report, validation (best model, early stopping), the stop
conditions, then the checkpoint, so a checkpoint holds everything its step changed. Running
`train` again on the same run directory resumes.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import NamedTuple

import keras
import tensorflow as tf

from nmt import run_directory
from nmt.config import Config
from nmt.data.text import check_parallel, read_lines
from nmt.data.tokenizer import Tokenizer, prepare_tokenizer
from nmt.data.training_data import TrainingData, load_training_data, prepared_folder
from nmt.errors import NmtError
from nmt.model.precision import resolve_compute_dtype
from nmt.model.seq2seq import build_model
from nmt.run_directory import CHECKPOINTS, TrainingProgress
from nmt.training.callbacks import Checkpointer, Log, ProgressReport, TrainLog, stop_requests
from nmt.training.distribution import (
    make_stop_vote,
    make_strategy,
    scratch_dir,
    wait_for,
    worker_of,
)
from nmt.training.epochs import epoch_batches
from nmt.training.fine_tuning import InitialWeights, adopt_source_run, init_source
from nmt.training.schedules import ScheduleFit
from nmt.training.steps import make_optimizer, make_train_step, steps_done
from nmt.training.validation import Validator, recall_best_bleu


class TrainResult(NamedTuple):
    steps: int
    epochs: int
    best_bleu: float
    # "max_steps", "max_epochs", "max_minutes", "early_stopping", "signal", or "other_worker"
    # (another worker of a multi-worker run stopped, for one of the other reasons)
    stopped_because: str
    signal: int = 0  # the number of the signal that stopped training (SIGINT, SIGTERM), else 0


class _Training(NamedTuple):
    """What the loop updates: the model, its optimizer and the counters saved beside them."""

    model: keras.Model
    optimizer: keras.optimizers.Optimizer
    progress: TrainingProgress
    step_scale: tf.Variable | None  # how much faster the decay runs (ScheduleFit)


def _print(message: str) -> None:
    print(message, flush=True)


def _check_data(config: Config) -> None:
    """Bad files are reported now, naming file and line, not mid-training: the validation
    files here (the training corpora are checked as they are prepared)."""
    d = config.data
    if not d.corpora:
        raise NmtError(
            "the config names no training data: set data.train_source and data.train_target, "
            "or data.train"
        )
    for files in d.validation_sets:
        check_parallel(files.source, files.target)
        for path in (files.source, files.target):
            for _ in read_lines(path):  # invalid UTF-8
                pass


def _limit_reached(config: Config, step: int, seconds: float, max_steps: int) -> str | None:
    t = config.training
    if max_steps and step >= max_steps:
        return "max_steps"
    if t.max_minutes and seconds >= 60 * t.max_minutes:
        return "max_minutes"
    return None


def _build(config: Config, tokenizer: Tokenizer, strategy: tf.distribute.Strategy) -> _Training:
    keras.utils.set_random_seed(config.training.seed)
    with strategy.scope():
        model = build_model(config.model, tokenizer.source_vocab_size, tokenizer.target_vocab_size)
        step_scale = tf.Variable(1.0, trainable=False) if config.training.fits_schedule else None
        optimizer = make_optimizer(config.training, step_scale)
        optimizer.build(model.trainable_variables)
    return _Training(model, optimizer, TrainingProgress(), step_scale)


def _describe_devices(config: Config, strategy: tf.distribute.Strategy) -> str:
    """The first line of training: where it runs and in which precision."""
    try:
        devices = ", ".join(strategy.extended.worker_devices)
    except RuntimeError:  # the default strategy: TensorFlow uses the first GPU, else the CPU
        gpus = tf.config.list_logical_devices("GPU")
        devices = gpus[0].name if gpus else tf.config.list_logical_devices("CPU")[0].name
    threads = tf.config.threading.get_intra_op_parallelism_threads()
    threads = f"{threads} threads" if threads else "all cores"
    replicas = strategy.num_replicas_in_sync
    precision = resolve_compute_dtype(config.model.compute_dtype)
    why = f" ({precision.reason})" if precision.reason else ""
    return (
        f"training on {devices} ({replicas} {'replicas' if replicas > 1 else 'replica'}, "
        f"{threads}), {precision.dtype} compute with float32 weights{why}"
    )


def _train_loop(
    config: Config,
    training: _Training,
    data: TrainingData,
    strategy: tf.distribute.Strategy,
    hooks: _Hooks,
    signals: list[int],
) -> str:
    """Runs epochs until a limit, early stopping or a signal; returns why it stopped."""
    t = config.training
    model, optimizer, p, _ = training
    train_step = None  # made for the distributed dataset's element spec
    # Workers must stop after the same step, or one would wait forever for the others.
    vote = make_stop_vote(strategy) if hooks.worker_count > 1 else bool
    started = hooks.clock_start
    while True:
        epoch = int(p.epoch)
        if t.max_epochs and epoch >= t.max_epochs:
            return "max_epochs"
        limit = _limit_reached(
            config, steps_done(optimizer), float(p.train_seconds), hooks.max_steps
        )
        if vote(bool(limit)):  # a finished run that is started again stops at once
            return limit or "other_worker"
        if hooks.validator is not None and hooks.validator.out_of_patience():
            return "early_stopping"
        current = epoch_batches(data, strategy, epoch, int(p.batches_in_epoch))
        hooks.log_epoch(epoch, current, strategy.num_replicas_in_sync, int(p.batches_in_epoch))
        if train_step is None:
            train_step = make_train_step(
                model,
                optimizer,
                t.label_smoothing,
                t.clip_norm,
                t.jit_compile,
                strategy,
                input_signature=[current.dataset.element_spec],
            )
        for batch, position in zip(current.dataset, current.positions):
            loss, tokens, gradient_norm = train_step(batch)
            step, loss = steps_done(optimizer), float(loss)
            _check_finite(loss, float(gradient_norm), step, hooks.run_dir)
            p.batches_in_epoch.assign(position)
            p.train_seconds.assign(time.monotonic() - started)
            done = position / max(current.plan.batches, 1)
            hooks.progress.after_step(
                step, epoch, loss, float(tokens), float(p.train_seconds), done
            )
            stopped = hooks.after_step(step, signals, vote)
            if stopped:
                return stopped
        p.epoch.assign_add(1)
        p.batches_in_epoch.assign(0)


def _check_finite(loss: float, gradient_norm: float, step: int, run_dir: Path) -> None:
    if not (math.isfinite(loss) and math.isfinite(gradient_norm)):
        raise NmtError(
            f"training diverged: the loss is {loss} (gradient norm {gradient_norm}) at step "
            f"{step}; nothing was saved after the last good checkpoint in "
            f"{run_dir / CHECKPOINTS}. Lower training.learning_rate or training.clip_norm and "
            "run again to resume"
        )


class _Hooks:
    """What runs after each step, in order: validation when due, the stop conditions, then
    one checkpoint holding everything the step changed."""

    def __init__(self, config, training, run_dir, worker, validator, checkpointer, progress, fit):
        self.config = config
        self.training = training
        self.run_dir = run_dir
        self.worker_count = worker.count
        self.is_chief = worker.is_chief
        self.validator = validator
        self.checkpointer = checkpointer
        self.progress = progress
        self.fit = fit
        self.clock_start = time.monotonic() - float(training.progress.train_seconds)
        self.validated_step = -1
        self.log = progress.log

    def log_epoch(self, epoch: int, current, replicas: int, position: int) -> None:
        """Says how long the epoch is, in batches and in steps, and where it starts."""
        where = f", from batch {position:,}" if position else ""
        self.log(
            f"epoch {epoch + 1}: {len(current.plan.line):,} pairs in {current.plan.batches:,} "
            f"batches, {current.steps:,} steps with {replicas} "
            f"{'replicas' if replicas > 1 else 'replica'}{where}"
        )

    def validate(self, step: int) -> None:
        if self.validator is not None and self.validated_step != step:
            self.validator(step, self.run_dir, self.is_chief)
            self.validated_step = step
            self.progress.restart_window()  # validation's time is not training throughput

    @property
    def max_steps(self) -> int:
        return self.fit.max_steps if self.fit else self.config.training.max_steps

    def after_step(self, step: int, signals: list[int], vote) -> str | None:
        t = self.config.training
        if step % t.validate_every == 0:
            self.validate(step)
        seconds = float(self.training.progress.train_seconds)
        if self.fit and self.fit.after_step(step, seconds):
            self.progress.set_total(self.max_steps)
        stopped = _limit_reached(self.config, step, seconds, self.max_steps)
        if self.validator is not None and self.validator.out_of_patience():
            stopped = "early_stopping"
        if signals:
            stopped = "signal"
        if vote(bool(stopped)):
            stopped = stopped or "other_worker"
        if step % t.log_every == 0:
            self.progress.restart_window()
        if not stopped:
            self.checkpointer.after_step(step, stopping=False)
        return stopped

    def finish(self, step: int, stopped: str, trained: bool) -> None:
        """The last validation (unless a signal asks to be quick) and the last checkpoint."""
        if stopped != "signal" and trained:
            self.validate(step)
        self.checkpointer.after_step(step, stopping=True)


def train(
    config: Config,
    run_dir: str | Path,
    log: Log = _print,
    init_from: str | Path | None = None,
) -> TrainResult:
    """Trains (or resumes training of) a model in `run_dir`.

    Args:
        config: the experiment.
        run_dir: folder for the config, tokenizer, checkpoints and logs (nmt/run_directory.py);
            if it already holds a run of the same model shape, training resumes where it stopped.
        log: receives one line per progress report (train.log in the run directory gets them
            too, timestamped).
        init_from: fine-tune: start a new run from the weights (and tokenizer) of another run
            or checkpoint, with a fresh optimizer and step count.

    Returns:
        How far training got and why it stopped.

    Raises:
        NmtError: bad data files, a run directory of another model, or a diverged loss.
    """
    run_dir = Path(run_dir)
    _check_data(config)
    strategy = make_strategy(config.training.distribution)
    worker = worker_of(strategy)
    source = init_source(init_from) if init_from else None
    if source is not None and run_directory.checkpoints_in(run_dir / CHECKPOINTS):
        _print(f"nmt: note: {run_dir} already holds checkpoints; resuming, not --init-from")
        source = None
    log = TrainLog(run_dir / run_directory.TRAIN_LOG if worker.is_chief else None, log)
    try:
        log(_describe_devices(config, strategy))
        wait = 60 * config.training.worker_wait_minutes
        if worker.is_chief:
            if source is not None:
                config = adopt_source_run(config, source, run_dir)
            order_changes = run_directory.prepare(config, run_dir, log)
            tokenizer = prepare_tokenizer(config, run_dir / run_directory.TOKENIZER, log)
            data = load_training_data(config, tokenizer, prepared_folder(config, run_dir), log)
        else:
            order_changes = []
            tokenizer = wait_for(
                run_dir / run_directory.TOKENIZER, Tokenizer.load, "the tokenizer", wait
            )
            data = wait_for(
                prepared_folder(config, run_dir),
                lambda folder: load_training_data(config, tokenizer, folder, log, prepare=False),
                "the prepared data",
                wait,
            )
        training = _build(config, tokenizer, strategy)
        checkpoint = _restore(run_dir, training, bool(order_changes), source, log)
        log(f"model: {training.model.count_params():,} parameters; run directory {run_dir}")
        if worker.count > 1:
            replicas = strategy.num_replicas_in_sync
            log(f"worker {worker.index} of {worker.count}, {replicas} replicas")
        hooks = _make_hooks(config, run_dir, training, tokenizer, checkpoint, worker, log)
        return _run(config, run_dir, training, data, strategy, hooks, log)
    finally:
        log.close()


def _restore(
    run_dir: Path,
    training: _Training,
    order_changed: bool,
    source: InitialWeights | None,
    log: Log,
) -> tf.train.Checkpoint:
    """Resumes from the newest readable checkpoint, or starts from --init-from's weights."""
    model, optimizer, progress, _ = training
    # Dropout seed states are saved too, so a resumed run draws the same masks.
    checkpoint = tf.train.Checkpoint(
        model=model, optimizer=optimizer, progress=progress, rng=list(model.non_trainable_variables)
    )
    manager = tf.train.CheckpointManager(checkpoint, str(run_dir / CHECKPOINTS), 1)
    restored = run_directory.restore_latest(checkpoint, manager)
    recall_best_bleu(progress, run_dir)
    if restored:
        log(
            f"resuming from {restored}: step {steps_done(optimizer)}, epoch "
            f"{int(progress.epoch) + 1}, batch {int(progress.batches_in_epoch)}"
        )
        if order_changed:
            progress.batches_in_epoch.assign(0)
    elif source is not None:
        loaded = run_directory.restore_weights(model, source.run_dir, source.checkpoint)
        log(f"fine-tuning from {loaded}: its weights, a fresh optimizer and step count")
    return checkpoint


def _make_hooks(config, run_dir, training, tokenizer, checkpoint, worker, log) -> _Hooks:
    t = config.training
    own_dir = scratch_dir(run_dir, worker)
    checkpointer = Checkpointer(
        tf.train.CheckpointManager(checkpoint, str(own_dir / CHECKPOINTS), t.keep_checkpoints),
        t.checkpoint_every,
        run_dir,
        worker,
    )
    validator = None
    if config.data.validation_sets:
        best = tf.train.CheckpointManager(
            tf.train.Checkpoint(model=training.model), str(own_dir / run_directory.BEST), 1
        )
        validator = Validator(
            config,
            tokenizer,
            training.model,
            training.optimizer,
            training.progress,
            lambda step: checkpointer.save(step, best),
            log,
        )
    fit = ScheduleFit(t, training.progress, training.step_scale, log) if t.fits_schedule else None
    progress = ProgressReport(
        t.log_every, fit.max_steps if fit else t.max_steps, training.optimizer, log
    )
    return _Hooks(config, training, run_dir, worker, validator, checkpointer, progress, fit)


def _run(config, run_dir, training, data, strategy, hooks, log) -> TrainResult:
    """The loop inside the signal handlers and the TensorBoard writer, then the last save."""
    writer = (
        tf.summary.create_file_writer(str(run_dir / run_directory.SUMMARIES))
        if hooks.is_chief
        else tf.summary.create_noop_writer()
    )
    first_step = steps_done(training.optimizer)
    with stop_requests() as signals, writer.as_default():
        stopped = _train_loop(config, training, data, strategy, hooks, signals)
        step = steps_done(training.optimizer)
        hooks.finish(step, stopped, trained=step > first_step)
    writer.close()
    log(f"stopped at step {step} ({stopped}); checkpoints in {run_dir / CHECKPOINTS}")
    return TrainResult(
        step,
        int(training.progress.epoch),
        float(training.progress.best_bleu),
        stopped,
        signals[0] if stopped == "signal" else 0,
    )
