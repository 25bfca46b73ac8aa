"""A run directory that is incomplete or mismatched gives one clear error, never a traceback."""

import shutil

import numpy as np
import pytest
from conftest import make_run_dir

from nmt.atomic import atomic_path, atomic_write_text
from nmt.data.tokenizer import train_tokenizer
from nmt.decoding.translator import Translator
from nmt.errors import NmtError


@pytest.mark.slow
def test_run_dir_without_checkpoint(trained_run, tmp_path):
    partial = tmp_path / "partial"
    partial.mkdir()
    shutil.copy(trained_run / "config.yaml", partial / "config.yaml")
    shutil.copytree(trained_run / "tokenizer", partial / "tokenizer")
    with pytest.raises(NmtError, match="no checkpoint yet"):
        Translator.load(partial)


@pytest.mark.slow
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


def test_without_best_the_latest_checkpoint_is_used_and_named(toy_data, tmp_path, capsys):
    run = make_run_dir(tmp_path, toy_data)
    translator = Translator.load(run.run_dir)
    newest = run.run_dir / "checkpoints" / "ckpt-200"
    assert capsys.readouterr().err == (
        f"nmt: no best/ checkpoint (no validation yet); using the newest training checkpoint "
        f"{newest}\n"
    )
    for loaded, saved in zip(translator.model.trainable_variables, run.weights[200], strict=True):
        np.testing.assert_array_equal(loaded.numpy(), saved)


@pytest.mark.parametrize("suffix", [".index", ".data-00000-of-00001"])
def test_a_checkpoint_file_name_loads_its_checkpoint(toy_data, tmp_path, suffix):
    run = make_run_dir(tmp_path, toy_data)
    path = run.run_dir / "checkpoints" / f"ckpt-100{suffix}"
    assert path.is_file()
    translator = Translator.load(run.run_dir, str(path))
    for loaded, saved in zip(translator.model.trainable_variables, run.weights[100], strict=True):
        np.testing.assert_array_equal(loaded.numpy(), saved)


def test_a_missing_checkpoint_is_one_line_naming_those_that_exist(toy_data, tmp_path, capfd):
    from nmt.cli import main

    run = make_run_dir(tmp_path, toy_data)
    folder = run.run_dir / "checkpoints"
    missing = folder / "ckpt-800.index"
    assert main(["translate", "--run-dir", str(run.run_dir), "--checkpoint", str(missing)]) == 1
    # Not TensorFlow's dozens of warning lines and its hint about file patterns: one line.
    assert capfd.readouterr().err.splitlines() == [
        f"nmt: error: no checkpoint {missing}; the checkpoints of "
        f"{run.run_dir}: {folder / 'ckpt-200'}, {folder / 'ckpt-100'}"
    ]


def test_an_ensemble_refuses_another_runs_checkpoint_with_a_different_tokenizer(toy_data, tmp_path):
    """Same vocabulary size, so the weights would load and decode with the wrong piece ids."""
    first = make_run_dir(tmp_path / "a", toy_data).run_dir
    second = make_run_dir(tmp_path / "b", toy_data).run_dir
    theirs = str(second / "checkpoints" / "ckpt-100")
    # Runs whose tokenizers are the same files (SentencePiece training is deterministic)
    # ensemble, each model with its own run's weights.
    ensemble = Translator.load(first, [str(first / "checkpoints" / "ckpt-200"), theirs])
    assert len(ensemble.models) == 2
    shutil.rmtree(second / "tokenizer")
    half = tmp_path / "half.en"
    half.write_text("".join(toy_data["train.en"].read_text().splitlines(True)[::2]))
    train_tokenizer([half], [toy_data["train.de"]], second / "tokenizer", vocab_size=60)
    with pytest.raises(NmtError, match=f"{theirs} belongs to {second}, whose tokenizer"):
        Translator.load(first, [str(first / "checkpoints" / "ckpt-200"), theirs])
