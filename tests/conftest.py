"""Shared fixtures, generated in code: a toy corpus, a tokenizer and one tiny trained run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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


@pytest.fixture(scope="session")
def toy_data(tmp_path_factory) -> dict[str, Path]:
    """Toy number-words corpus: 2,500 training pairs, 40 validation, 100 test."""
    from nmt.toy import write_toy_corpus

    return write_toy_corpus(tmp_path_factory.mktemp("toy"), train=2500, valid=40, test=100)


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
    root = tmp_path_factory.mktemp("run")
    config = root / "toy.yaml"
    config.write_text(TINY_CONFIG.format(data=toy_data["train.en"].parent))
    run_dir = root / "run"
    run_nmt("train", "--config", str(config), "--run-dir", str(run_dir))
    return run_dir
