"""Shared fixtures, generated in code: a toy corpus, a tokenizer and one tiny trained run."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

TINY_CONFIG = """\
tokenizer:
  vocab_size: 60
data:
  train_source: {data}/train.en
  train_target: {data}/train.de
  valid_source: {data}/valid.en
  valid_target: {data}/valid.de
  batch_size: 32
  max_source_length: 40
  max_target_length: 40
model:
  embedding_size: 32
  hidden_size: 64
  encoder_layers: 2
  decoder_layers: 2
  dropout: 0.0
training:
  learning_rate: 0.005
  max_steps: 1000
  max_epochs: 0
  log_every: 50
  validate_every: 500
  checkpoint_every: 200
  label_smoothing: 0.0
decoding:
  beam_size: 3
"""


def built_once(tmp_path_factory, name: str, build) -> Path:
    """A folder that `build(folder)` fills once per test session, however many xdist workers
    ask: the first to take the lock builds it, the others wait and reuse it. Training the tiny
    models once instead of once per worker keeps the suite within its ten minutes."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the session's folder, above each worker's own
    root = base / name
    root.mkdir(exist_ok=True)
    with open(base / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = base / f"{name}.done"
        if not done.exists():
            build(root)
            done.touch()
    return root


@pytest.fixture(scope="session")
def toy_data(tmp_path_factory) -> dict[str, Path]:
    """Toy number-words corpus: 2,500 training pairs, 40 validation, 100 test."""
    from nmt.toy import write_toy_corpus

    def write(root: Path) -> None:
        write_toy_corpus(root, train=2500, valid=40, test=100)

    root = built_once(tmp_path_factory, "toy", write)
    return {
        f"{split}.{lang}": root / f"{split}.{lang}"
        for split in ("train", "valid", "test")
        for lang in ("en", "de")
    }


@pytest.fixture(scope="session")
def tokenizer(toy_data, tmp_path_factory):
    from nmt.data.tokenizer import train_tokenizer

    return train_tokenizer(
        [toy_data["train.en"]],
        [toy_data["train.de"]],
        tmp_path_factory.mktemp("spm"),
        vocab_size=60,
    )


def run_nmt(
    *args: str, input: str | None = None, check: bool = True
) -> subprocess.CompletedProcess:
    """Runs the `nmt` command line as a user would, in a fresh process."""
    result = subprocess.run(
        [sys.executable, "-m", "nmt", *args],
        input=input,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"nmt {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="session")
def trained_run(toy_data, tmp_path_factory) -> Path:
    """A tiny model trained to convergence on the toy task through `nmt train` (about a minute)."""

    def train(root: Path) -> None:
        config = root / "toy.yaml"
        config.write_text(TINY_CONFIG.format(data=toy_data["train.en"].parent))
        run_nmt("train", "--config", str(config), "--run-dir", str(root / "run"))

    return built_once(tmp_path_factory, "trained", train) / "run"


class FakeRun(NamedTuple):
    """A run directory with untrained checkpoints, and the weights each one holds."""

    run_dir: Path
    weights: dict[int, list]  # step -> the model's trainable weights in ckpt-STEP
    averages: dict[int, list]  # step -> the optimizer's moving averages in ckpt-STEP (ema on)


def make_run_dir(
    root: Path, toy_data: dict[str, Path], ema_decay: float = 0.0, steps=(100, 200)
) -> FakeRun:
    """A run directory laid out as `nmt train` leaves it, in a second instead of a minute.

    Training checkpoints hold the same objects as the trainer's (model, optimizer with its moving
    averages when `ema_decay` > 0, progress, dropout seeds) with random weights, so loading,
    averaging and error messages can be tested without training. There is no best/.
    """
    import numpy as np
    import tensorflow as tf
    import yaml

    from nmt.config import config_from_dict, save_config
    from nmt.data.tokenizer import train_tokenizer
    from nmt.model.seq2seq import build_model
    from nmt.run_directory import CHECKPOINTS, TrainingProgress
    from nmt.training.steps import make_optimizer

    run_dir = root / "run"
    data = yaml.safe_load(TINY_CONFIG.format(data=toy_data["train.en"].parent))
    data["model"].update(embedding_size=8, hidden_size=8)
    data["training"]["ema_decay"] = ema_decay
    config = config_from_dict(data)
    save_config(config, run_dir / "config.yaml")
    tokenizer = train_tokenizer(
        [toy_data["train.en"]], [toy_data["train.de"]], run_dir / "tokenizer", vocab_size=60
    )
    model = build_model(config.model, tokenizer.source_vocab_size, tokenizer.target_vocab_size)
    optimizer = make_optimizer(config.training)
    optimizer.build(model.trainable_variables)
    # The moving averages, one per trainable variable in the same order.
    averages = [v for v in optimizer.variables if v.path.endswith("_average")]
    assert len(averages) == (len(model.trainable_variables) if ema_decay > 0 else 0)
    checkpoint = tf.train.Checkpoint(
        model=model,
        optimizer=optimizer,
        progress=TrainingProgress(),
        rng=list(model.non_trainable_variables),
    )
    manager = tf.train.CheckpointManager(checkpoint, str(run_dir / CHECKPOINTS), max_to_keep=10)
    rng = np.random.default_rng(0)
    weights, moving = {}, {}
    for step in steps:
        for variable in model.trainable_variables + averages:
            variable.assign(rng.uniform(-1, 1, variable.shape).astype(np.float32))
        optimizer.iterations.assign(step)
        weights[step] = [v.numpy() for v in model.trainable_variables]
        moving[step] = [v.numpy() for v in averages]
        manager.save(checkpoint_number=step)
    return FakeRun(run_dir, weights, moving)
