"""A run directory that is incomplete or mismatched gives one clear error, never a traceback."""

import shutil

import pytest

from nmt.atomic import atomic_path, atomic_write_text
from nmt.data.tokenizer import train_tokenizer
from nmt.decoding.translator import Translator
from nmt.errors import NmtError


def test_run_dir_without_checkpoint(trained_run, tmp_path):
    partial = tmp_path / "partial"
    partial.mkdir()
    shutil.copy(trained_run / "config.yaml", partial / "config.yaml")
    shutil.copytree(trained_run / "tokenizer", partial / "tokenizer")
    with pytest.raises(NmtError, match="no checkpoint yet"):
        Translator.load(partial)


def test_tokenizer_that_does_not_match_the_model(trained_run, toy_data, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(trained_run, other)
    shutil.rmtree(other / "tokenizer")
    train_tokenizer(
        [toy_data["train.en"]], [toy_data["train.de"]], other / "tokenizer", vocab_size=45
    )
    with pytest.raises(NmtError, match="do the tokenizer and config match the checkpoint"):
        Translator.load(other)


def test_atomic_write_keeps_the_old_copy_when_interrupted(tmp_path):
    target = tmp_path / "config.yaml"
    atomic_write_text(target, "good\n")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed mid-write")
    assert target.read_text() == "good\n"
    assert [p.name for p in tmp_path.iterdir()] == ["config.yaml"]
