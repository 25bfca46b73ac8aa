"""The training loop's hooks: each does one job after a step (report progress, save, stop on a
signal), so the loop itself reads as the data flow. Validation has its own module."""

from __future__ import annotations

import contextlib
import datetime
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO

import keras
import tensorflow as tf

from nmt.run_directory import save_checkpoint
from nmt.training.distribution import Worker, discard_scratch

Log = Callable[[str], None]


class TrainLog:
    """Sends each progress line to `echo` (the terminal) and, timestamped, to a log file."""

    def __init__(self, path: Path | None, echo: Log):
        self.echo = echo
        self._file: TextIO | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115

    def __call__(self, line: str) -> None:
        self.echo(line)
        if self._file is not None:
            stamp = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
            self._file.write(f"{stamp} {line}\n")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class ProgressReport:
    """A line every `log_every` steps (loss, learning rate, target tokens/s, training time),
    TensorBoard scalars, and on a terminal a live bar between the lines."""

    def __init__(self, log_every: int, max_steps: int, optimizer, log: Log):
        self.log_every = log_every
        self.optimizer = optimizer
        self.log = log
        self.bar = (
            keras.utils.Progbar(max_steps or None, stateful_metrics=["loss", "tgt tok/s"])
            if sys.stdout.isatty() and not os.environ.get("NMT_QUIET")
            else None
        )
        self.restart_window()

    def set_total(self, max_steps: int) -> None:
        """The bar's end moves when a schedule fit shortens the run."""
        if self.bar is not None:
            self.bar.target = max_steps or None

    def restart_window(self) -> None:
        """Starts a new averaging window (after a line, and after validation's pause)."""
        self.tokens, self.loss, self.steps = 0.0, 0.0, 0
        self.started = time.monotonic()

    def after_step(
        self, step: int, epoch: int, loss: float, tokens: float, seconds: float, done: float
    ):
        """Counts a step; `done` is the share of the epoch read so far (0 to 1)."""
        self.tokens += tokens
        self.loss += loss
        self.steps += 1
        elapsed = max(time.monotonic() - self.started, 1e-9)
        if self.bar is not None:
            self.bar.update(
                step, [("loss", self.loss / self.steps), ("tgt tok/s", self.tokens / elapsed)]
            )
        if step % self.log_every:
            return
        if self.bar is not None:
            print()
        learning_rate = float(self.optimizer.learning_rate)
        tf.summary.scalar("train/loss", self.loss / self.steps, step=step)
        tf.summary.scalar("train/learning_rate", learning_rate, step=step)
        tf.summary.scalar("train/target_tokens_per_second", self.tokens / elapsed, step=step)
        self.log(
            f"step {step:>7} | epoch {epoch + 1} ({100 * done:.0f}%)"
            f" | loss {self.loss / self.steps:.3f}"
            f" | lr {learning_rate:.2e} | {self.tokens / elapsed:,.0f} tgt tok/s"
            f" | {format_seconds(seconds)}"
        )


class Checkpointer:
    """Saves training checkpoints every `every` steps and when training stops, once per step.

    Every worker saves (tf.distribute requires it); only the chief's copy is kept.
    """

    def __init__(
        self, manager: tf.train.CheckpointManager, every: int, run_dir: Path, worker: Worker
    ):
        self.manager = manager
        self.every = every
        self.run_dir = run_dir
        self.worker = worker

    def save(self, step: int, manager: tf.train.CheckpointManager | None = None) -> str:
        path = save_checkpoint(manager or self.manager, step)
        discard_scratch(self.run_dir, self.worker)
        return path

    def saved(self, step: int) -> bool:
        latest = self.manager.latest_checkpoint
        return latest is not None and Path(latest).name == f"ckpt-{step}"

    def after_step(self, step: int, stopping: bool) -> None:
        if (stopping or step % self.every == 0) and not self.saved(step):
            self.save(step)


@contextlib.contextmanager
def stop_requests() -> Iterator[list[int]]:
    """Turns SIGINT/SIGTERM into a request the loop honours after the current step; yields the
    signal numbers received."""
    received: list[int] = []

    def handler(signum, frame):
        received.append(signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def format_seconds(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
