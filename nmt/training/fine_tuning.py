"""Fine-tuning: a new run that starts from another run's weights and tokenizer, with a fresh
optimizer and step count (`nmt train --init-from`)."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import NamedTuple

from nmt import run_directory
from nmt.config import Config, resume_changes
from nmt.errors import NmtError


class InitialWeights(NamedTuple):
    """Where `--init-from` takes a model's weights (and tokenizer) from."""

    run_dir: Path
    checkpoint: str | None  # None: the run's best, else its latest


def init_source(path: str | Path) -> InitialWeights:
    """Reads `--init-from`: a run directory, or a checkpoint prefix inside one.

    Raises:
        NmtError: neither a run directory nor a checkpoint of one.
    """
    path = Path(path)
    if (path / run_directory.CONFIG).is_file():
        return InitialWeights(path, None)
    for run_dir in path.parents[:2]:  # RUN/checkpoints/ckpt-N or RUN/best/ckpt-N
        if (run_dir / run_directory.CONFIG).is_file() and Path(f"{path}.index").is_file():
            return InitialWeights(run_dir, str(path))
    raise NmtError(
        f"--init-from {path}: neither a run directory (with config.yaml) nor a checkpoint "
        "prefix inside one (such as RUN/checkpoints/ckpt-4000)"
    )


def adopt_source_run(config: Config, source: InitialWeights, run_dir: Path) -> Config:
    """Fine-tuning starts from another run's model: its tokenizer is copied into `run_dir`, and
    the model must have the same shape (the tokenizer settings become the source run's)."""
    old = run_directory.read_config(source.run_dir)
    config = dataclasses.replace(config, tokenizer=old.tokenizer)
    differences = resume_changes(old, config).shape
    if differences:
        raise NmtError(
            f"--init-from {source.run_dir} holds a model of another shape; differing fields: "
            + "; ".join(differences)
        )
    tokenizer_dir = run_dir / run_directory.TOKENIZER
    if not tokenizer_dir.is_dir():
        shutil.copytree(source.run_dir / run_directory.TOKENIZER, tokenizer_dir)
    return config
