"""Fault injection: kills, signals, corrupted checkpoints and NaN losses lose no work."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from conftest import built_once

from nmt.config import load_config
from nmt.errors import NmtError
from nmt.model.seq2seq import build_model
from nmt.training import steps, trainer

# Every test here trains a model.
pytestmark = pytest.mark.slow

CONFIG = """\
tokenizer: {{vocab_size: 60}}
data:
  train_source: {data}/train.en
  train_target: {data}/train.de
  batch_size: 16
  shuffle_buffer: 500
model: {{embedding_size: 8, hidden_size: 16, encoder_layers: 2, decoder_layers: 2, dropout: 0.3}}
training:
  max_steps: {steps}
  max_epochs: 0
  log_every: 1
  validate_every: 1000
  checkpoint_every: 10
  keep_checkpoints: 10
"""


def write_config(tmp_path: Path, toy_data, steps: int = 40) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG.format(data=toy_data["train.en"].parent, steps=steps))
    return path


def start_training(config: Path, run_dir: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "nmt", "train", "--config", str(config), "--run-dir", str(run_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_step(process: subprocess.Popen, step: int) -> None:
    for line in process.stdout:
        if line.startswith("step") and int(line.split()[1]) >= step:
            return
    raise AssertionError(f"training ended before step {step}: {process.stderr.read()}")


def checkpoint_values(path: str) -> dict[str, np.ndarray]:
    """Every saved tensor except wall-clock bookkeeping."""
    reader = tf.train.load_checkpoint(path)
    return {
        key: reader.get_tensor(key)
        for key in reader.get_variable_to_shape_map()
        if "train_seconds" not in key and "save_counter" not in key and "OBJECT_GRAPH" not in key
    }


@pytest.fixture(scope="module")
def uninterrupted(toy_data, tmp_path_factory) -> dict[str, np.ndarray]:

    def train(root: Path) -> None:
        config = write_config(root, toy_data)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "nmt",
                "train",
                "--config",
                str(config),
                "--run-dir",
                str(root / "run"),
            ],
            check=True,
            capture_output=True,
        )

    root = built_once(tmp_path_factory, "uninterrupted", train)
    return checkpoint_values(str(root / "run" / "checkpoints" / "ckpt-40"))


# Step lines are printed just before that step's checkpoint is written, so the kill at 20 lands
# at or during the write of ckpt-20.
@pytest.mark.parametrize("kill_after", [7, 20, 23])
def test_sigkill_then_rerun_ends_with_identical_weights(
    toy_data, tmp_path, uninterrupted, kill_after
):
    config, run_dir = write_config(tmp_path, toy_data), tmp_path / "run"
    process = start_training(config, run_dir)
    wait_for_step(process, kill_after)
    process.kill()
    process.wait()
    subprocess.run(
        [sys.executable, "-m", "nmt", "train", "--config", str(config), "--run-dir", str(run_dir)],
        check=True,
        capture_output=True,
    )
    resumed = checkpoint_values(str(run_dir / "checkpoints" / "ckpt-40"))
    assert resumed.keys() == uninterrupted.keys()
    for key, value in uninterrupted.items():
        np.testing.assert_array_equal(resumed[key], value, err_msg=key)


def test_sigterm_saves_a_checkpoint_and_says_how_to_resume(toy_data, tmp_path):
    config, run_dir = write_config(tmp_path, toy_data, steps=100000), tmp_path / "run"
    process = start_training(config, run_dir)
    wait_for_step(process, 3)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143
    assert "Run the same command again to resume" in stderr
    state = tf.train.get_checkpoint_state(str(run_dir / "checkpoints"))
    step = int(state.model_checkpoint_path.rsplit("-", 1)[1])
    assert step >= 3


def test_corrupted_newest_checkpoint_falls_back_to_the_previous(toy_data, tmp_path, capsys):
    config = load_config(write_config(tmp_path, toy_data, steps=20))
    run_dir = tmp_path / "run"
    trainer.train(config, run_dir)
    newest = run_dir / "checkpoints" / "ckpt-20.data-00000-of-00001"
    newest.write_bytes(newest.read_bytes()[:100])  # truncated, as by a dying disk
    longer = load_config(write_config(tmp_path, toy_data, steps=25))
    result = trainer.train(longer, run_dir)
    err = capsys.readouterr()
    assert "ckpt-20 is unreadable" in err.err
    assert "resuming from" in err.out and "step 10" in err.out
    assert result.steps == 25


def test_nan_loss_stops_naming_the_step_and_keeps_the_good_checkpoint(
    toy_data, tmp_path, monkeypatch
):
    config = load_config(write_config(tmp_path, toy_data, steps=10))
    run_dir = tmp_path / "run"
    trainer.train(config, run_dir)
    good = checkpoint_values(str(run_dir / "checkpoints" / "ckpt-10"))

    real_loss = steps.masked_cross_entropy

    def poisoned(labels, logits, label_smoothing=0.0):
        loss_sum, tokens = real_loss(labels, logits, label_smoothing)
        return loss_sum * float("nan"), tokens

    monkeypatch.setattr(steps, "masked_cross_entropy", poisoned)
    with pytest.raises(NmtError, match=r"loss is nan .*at step 11"):
        trainer.train(load_config(write_config(tmp_path, toy_data, steps=30)), run_dir)
    state = tf.train.get_checkpoint_state(str(run_dir / "checkpoints"))
    assert state.model_checkpoint_path.endswith("ckpt-10")
    after = checkpoint_values(str(run_dir / "checkpoints" / "ckpt-10"))
    for key, value in good.items():
        np.testing.assert_array_equal(after[key], value)


@pytest.fixture
def small_disk(tmp_path):
    """A 1.5 MB tmpfs: enough for a tiny run's first checkpoints, not for all of them."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1500k", "tmpfs", str(mount_point)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    yield mount_point
    subprocess.run(["umount", str(mount_point)], check=False)


def test_full_disk_while_saving_keeps_the_previous_checkpoint(toy_data, tmp_path, small_disk):
    import shutil

    text = CONFIG.format(data=toy_data["train.en"].parent, steps=200)
    (tmp_path / "c.yaml").write_text(text.replace("keep_checkpoints: 10", "keep_checkpoints: 50"))
    # The prepared corpus lives elsewhere, as a shared data.prepared_dir would: the small disk
    # holds the run's checkpoints only.
    config = load_config(tmp_path / "c.yaml", [f"data.prepared_dir={tmp_path / 'prepared'}"])
    run_dir = small_disk / "run"
    with pytest.raises(NmtError, match=r"could not write checkpoint \d+ .*is intact"):
        trainer.train(config, run_dir)
    latest = tf.train.latest_checkpoint(str(run_dir / "checkpoints"))
    assert latest is not None
    checkpoint_values(latest)  # the index names a complete, readable checkpoint
    # With space again, the same command resumes from it and finishes.
    roomy = tmp_path / "roomy"
    shutil.copytree(run_dir, roomy)
    for leftover in (roomy / "checkpoints").glob("*_temp*"):
        shutil.rmtree(leftover, ignore_errors=True)
    result = trainer.train(config, roomy)
    assert result.steps == 200


def test_weight_averaging_validates_and_keeps_the_average_but_trains_on(toy_data, tmp_path):
    """training.ema_decay: best/ holds the moving average; checkpoints/ the trained weights
    plus the average inside the optimizer state (so resuming stays exact). The average is a
    shadow: validating with it and swapping the trained weights back changes nothing that is
    trained, so an EMA run's checkpoints are the plain run's (the recipe's EMA ablation decodes
    both from one run)."""
    validating = [
        "training.checkpoint_every=10",
        "training.validate_every=10",
        f"data.valid_source={toy_data['valid.en']}",
        f"data.valid_target={toy_data['valid.de']}",
        "training.valid_max_sentences=5",
    ]
    for name, extra in (("plain", []), ("run", ["training.ema_decay=0.9"])):
        config = load_config(write_config(tmp_path, toy_data, steps=20), validating + extra)
        trainer.train(config, tmp_path / name, log=lambda line: None)
    (best_index,) = (tmp_path / "run" / "best").glob("ckpt-*.index")
    step = best_index.name.removesuffix(".index")
    trained = tf.train.load_checkpoint(str(tmp_path / "run" / "checkpoints" / step))
    best = tf.train.load_checkpoint(str(best_index.with_suffix("")))
    tensors = {name: trained.get_tensor(name) for name in trained.get_variable_to_shape_map()}
    slots = [t for name, t in tensors.items() if name.startswith("optimizer/_variables/")]
    weights = [t for name, t in tensors.items() if not name.startswith("optimizer/_variables/")]
    averages = [
        best.get_tensor(n) for n in best.get_variable_to_shape_map() if n.startswith("model/")
    ]

    def among(tensor, pool):
        return any(
            isinstance(t, np.ndarray) and t.shape == tensor.shape and np.array_equal(t, tensor)
            for t in pool
        )

    assert averages and all(among(average, slots) for average in averages)
    assert sum(among(average, weights) for average in averages) < len(averages) // 2

    plain = checkpoint_values(str(tmp_path / "plain" / "checkpoints" / "ckpt-20"))
    ema = checkpoint_values(str(tmp_path / "run" / "checkpoints" / "ckpt-20"))
    # The model's weights: a checkpoint stores each once, under the optimizer's list of them.
    trained_weights = [key for key in plain if key.startswith("optimizer/_trainable_variables/")]
    assert len(trained_weights) > 10
    for key in trained_weights:
        np.testing.assert_array_equal(ema[key], plain[key], err_msg=key)


def straight_and_resumed(toy_data, tmp_path, overrides):
    """Step 40's checkpointed tensors of a run that never stopped and of one stopped at step 20
    and resumed, both with `overrides`; their keys are checked equal."""
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    trainer.train(load_config(write_config(tmp_path, toy_data, steps=40), overrides), straight)
    trainer.train(load_config(write_config(tmp_path, toy_data, steps=20), overrides), resumed)
    trainer.train(load_config(write_config(tmp_path, toy_data, steps=40), overrides), resumed)
    expected = checkpoint_values(str(straight / "checkpoints" / "ckpt-40"))
    actual = checkpoint_values(str(resumed / "checkpoints" / "ckpt-40"))
    assert actual.keys() == expected.keys()
    return expected, actual


# One run with every option that keeps a state of its own across a resume (one run instead of
# four keeps the suite within its ten minutes); any of them resuming wrongly alone makes the
# resumed weights differ.
STATEFUL = {
    # The moving average lives in the optimizer state.
    "training.ema_decay": "0.9",
    # The pieces dropped depend on a random state kept in the checkpoint, and when dropping
    # begins on the restored step count: the resumed run drops the same pieces from step 30.
    "model.token_dropout": "0.2",
    "model.token_dropout_start": "30",
    # Each chunk of an epoch is segmented with a seed of its own: the stop at step 20 is
    # mid-epoch, and the resumed run trains on the same pieces.
    "data.sampling_alpha": "0.3",
    # The recurrent dropout masks come from random states kept in the checkpoint.
    "model.recurrent_dropout": "0.2",
}


@pytest.mark.slow
def test_resuming_with_every_stateful_option_is_exact(toy_data, tmp_path):
    """A run stopped at step 20 and resumed ends with the same weights, moving average and
    random states as one that never stopped, with weight EMA, token dropout from step 30,
    subword sampling and recurrent dropout all on; and sampling does change what is learnt."""
    overrides = [f"{key}={value}" for key, value in STATEFUL.items()]
    expected, actual = straight_and_resumed(toy_data, tmp_path, overrides)
    assert sum("optimizer/_variables" in key for key in expected) > 20  # the EMA slots too
    # The random states are saved as `rng/N`: token dropout adds one to the model's own.
    untokened = [o for o in overrides if not o.startswith("model.token_dropout")]
    plain = build_model(load_config(write_config(tmp_path, toy_data), untokened).model, 60, 60)
    assert sum(key.startswith("rng/") for key in expected) == len(plain.non_trainable_variables) + 1
    for key, value in expected.items():
        np.testing.assert_array_equal(actual[key], value, err_msg=key)
    unsampled_run = tmp_path / "unsampled"
    unsampling = [o for o in overrides if not o.startswith("data.sampling_alpha")]
    config = load_config(write_config(tmp_path, toy_data, steps=40), unsampling)
    trainer.train(config, unsampled_run)
    unsampled = checkpoint_values(str(unsampled_run / "checkpoints" / "ckpt-40"))
    weights = [k for k in expected if k.startswith("optimizer/_trainable_variables/")]
    assert weights and any(not np.array_equal(unsampled[k], expected[k]) for k in weights)
