"""Checkpoint averaging: N identical checkpoints average to the same weights; two to the mean."""

import shutil

import numpy as np
import pytest
from conftest import make_run_dir

from nmt.decoding.translator import Translator
from nmt.run_directory import checkpoints_in
from nmt.training.averaging import average_checkpoints


@pytest.mark.slow
def test_averaging_identical_checkpoints_returns_the_same_weights(trained_run):
    newest = checkpoints_in(trained_run / "checkpoints")[0]
    averaged = average_checkpoints(trained_run, [newest, newest, newest])
    a = Translator.load(trained_run, newest)
    b = Translator.load(trained_run, averaged)
    for x, y in zip(a.model.trainable_variables, b.model.trainable_variables, strict=True):
        np.testing.assert_allclose(x.numpy(), y.numpy(), rtol=1e-6, atol=1e-7)


@pytest.mark.slow
def test_averaging_two_checkpoints_gives_their_mean(trained_run):
    first, second = checkpoints_in(trained_run / "checkpoints")[:2]
    averaged = average_checkpoints(trained_run, [first, second])
    a, b = Translator.load(trained_run, first), Translator.load(trained_run, second)
    mean = Translator.load(trained_run, averaged)
    for x, y, m in zip(
        a.model.trainable_variables,
        b.model.trainable_variables,
        mean.model.trainable_variables,
        strict=True,
    ):
        np.testing.assert_allclose(m.numpy(), (x.numpy() + y.numpy()) / 2, rtol=1e-5, atol=1e-6)
    assert mean.translate(["twenty one"])[0]  # the averaged model translates


def _loaded_weights(run_dir, checkpoint):
    return [v.numpy() for v in Translator.load(run_dir, checkpoint).model.trainable_variables]


def _assert_mean_of(weights, *members):
    for i, w in enumerate(weights):
        np.testing.assert_allclose(w, np.mean([m[i] for m in members], axis=0), atol=1e-6)


def test_with_ema_the_moving_averages_are_averaged_not_the_raw_weights(toy_data, tmp_path):
    run = make_run_dir(tmp_path, toy_data, ema_decay=0.999)
    lines = []
    averaged = average_checkpoints(run.run_dir, last=2, report=lines.append)
    _assert_mean_of(_loaded_weights(run.run_dir, averaged), run.averages[100], run.averages[200])
    assert lines == [
        "averaged the moving averages of the weights (training.ema_decay 0.999) of 2 checkpoints"
    ]


def test_without_ema_the_weights_are_averaged_and_the_report_says_why(toy_data, tmp_path):
    run = make_run_dir(tmp_path, toy_data)
    lines = []
    averaged = average_checkpoints(run.run_dir, last=2, report=lines.append)
    _assert_mean_of(_loaded_weights(run.run_dir, averaged), run.weights[100], run.weights[200])
    assert "training.ema_decay is off" in lines[0]


def test_a_checkpoint_without_moving_average_is_named_and_its_weights_used(toy_data, tmp_path):
    run = make_run_dir(tmp_path, toy_data, ema_decay=0.99)
    first = average_checkpoints(run.run_dir, last=1, report=lambda line: None)  # model only
    lines = []
    second = average_checkpoints(
        run.run_dir, [first, str(run.run_dir / "checkpoints" / "ckpt-100")], report=lines.append
    )
    _assert_mean_of(_loaded_weights(run.run_dir, second), run.averages[200], run.averages[100])
    assert first in lines[0] and "no optimizer state" in lines[0]


def test_a_checkpoint_name_without_step_number_is_a_one_line_error(toy_data, tmp_path, capfd):
    from nmt.cli import main

    run = make_run_dir(tmp_path, toy_data, steps=(100,))
    folder = run.run_dir / "checkpoints"
    for part in folder.glob("ckpt-100.*"):
        shutil.copy(part, folder / part.name.replace("ckpt-100", "final"))
    assert (
        main(["average", "--run-dir", str(run.run_dir), "--checkpoint", str(folder / "final")]) == 1
    )
    assert capfd.readouterr().err.splitlines() == [
        f"nmt: error: checkpoint {folder / 'final'} does not end in a step number (ckpt-STEP); "
        "the average is numbered with the highest step of its inputs, so rename it or leave it out"
    ]
