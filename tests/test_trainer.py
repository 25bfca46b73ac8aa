"""Training bookkeeping a user relies on: early stopping that survives restarts, resume that
refuses or restarts what it must, fine-tuning from another run, validation, train.log."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow as tf

from nmt.config import load_config
from nmt.data.training_data import load_training_data
from nmt.errors import NmtError
from nmt.model import precision
from nmt.run_directory import load_trained
from nmt.training import trainer
from nmt.training.losses import masked_cross_entropy
from nmt.training.validation import validation_set

pytestmark = pytest.mark.slow

CONFIG = """\
tokenizer: {{vocab_size: 60}}
data:
  train_source: {data}/train.en
  train_target: {data}/train.de
  valid_source: {data}/valid.en
  valid_target: {data}/valid.de
  batch_size: 16
  shuffle_buffer: 500
model: {{embedding_size: 8, hidden_size: 16, encoder_layers: 2, decoder_layers: 2, dropout: 0.0}}
training:
  max_steps: {steps}
  max_epochs: 0
  log_every: 1
  validate_every: 5
  checkpoint_every: 5
  keep_checkpoints: 50
  valid_max_sentences: 8
"""


def write_config(tmp_path: Path, toy_data, steps: int = 10) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG.format(data=toy_data["train.en"].parent, steps=steps))
    return path


def progress_of(checkpoint: str) -> dict[str, float]:
    reader = tf.train.load_checkpoint(checkpoint)
    return {
        name: reader.get_tensor(f"progress/{name}/.ATTRIBUTES/VARIABLE_VALUE")
        for name in ("best_bleu", "best_step", "validations_without_gain", "batches_in_epoch")
    }


def test_an_early_stopped_run_started_again_trains_no_step(toy_data, tmp_path):
    config = load_config(
        write_config(tmp_path, toy_data, steps=1000), ["training.early_stopping_patience=1"]
    )
    first = trainer.train(config, tmp_path / "run", log=lambda line: None)
    assert first.stopped_because == "early_stopping"
    lines: list[str] = []
    again = trainer.train(config, tmp_path / "run", log=lines.append)
    assert again.stopped_because == "early_stopping"
    assert again.steps == first.steps
    assert not any(line.startswith("step") for line in lines)


def test_sigkill_right_after_a_validation_keeps_its_bookkeeping(toy_data, tmp_path):
    config, run_dir = write_config(tmp_path, toy_data, steps=100000), tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "nmt", "train", "--config", str(config), "--run-dir", str(run_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        for line in process.stdout:
            if line.startswith("validation at step 10:"):
                break
        else:
            raise AssertionError("training ended before its second validation")
        deadline = time.monotonic() + 60
        while not (run_dir / "checkpoints" / "ckpt-10.index").is_file():
            assert time.monotonic() < deadline, "no checkpoint after the validation"
            time.sleep(0.01)
        state = None
        while state is None or not state.model_checkpoint_path.endswith("ckpt-10"):
            state = tf.train.get_checkpoint_state(str(run_dir / "checkpoints"))
            time.sleep(0.01)
    finally:
        process.kill()
        process.wait()
    best, best_step = re.search(r"best ([\d.]+) at step (\d+)", line).groups()
    saved = progress_of(str(run_dir / "checkpoints" / "ckpt-10"))
    assert saved["best_step"] == int(best_step)
    assert f"{saved['best_bleu']:.2f}" == best
    assert saved["validations_without_gain"] == (0 if best_step == "10" else 1)


def test_resume_refuses_shape_changes_and_restarts_the_epoch_on_order_changes(toy_data, tmp_path):
    path, run_dir = write_config(tmp_path, toy_data, steps=10), tmp_path / "run"
    trainer.train(load_config(path), run_dir, log=lambda line: None)
    with pytest.raises(NmtError, match=r"model.hidden_size: 16 -> 32"):
        trainer.train(load_config(path, ["model.hidden_size=32"]), run_dir)

    lines: list[str] = []
    more = ["training.max_steps=15", "model.param_init=0.1", "tokenizer.max_training_sentences=9"]
    trainer.train(load_config(path, more), run_dir, log=lines.append)
    assert any("model.param_init: 0.0 -> 0.1 acts only when a run starts" in x for x in lines)
    assert progress_of(str(run_dir / "checkpoints" / "ckpt-15"))["batches_in_epoch"] == 15

    lines.clear()
    reordered = ["training.max_steps=20", "data.batch_size=8"]
    trainer.train(load_config(path, reordered), run_dir, log=lines.append)
    assert any(
        "data.batch_size: 16 -> 8" in x and "starts its current epoch again" in x for x in lines
    )
    assert progress_of(str(run_dir / "checkpoints" / "ckpt-20"))["batches_in_epoch"] == 5


def test_fine_tuning_starts_from_the_source_models_loss(toy_data, tmp_path, monkeypatch):
    path = write_config(tmp_path, toy_data, steps=10)
    source = tmp_path / "source"
    trainer.train(load_config(path), source, log=lambda line: None)

    first_losses = []
    make_train_step = trainer.make_train_step

    def recording(*args, **kwargs):
        step = make_train_step(*args, **kwargs)

        def wrapped(batch):
            result = step(batch)
            first_losses.append(float(result[0]))
            return result

        return wrapped

    monkeypatch.setattr(trainer, "make_train_step", recording)
    config = load_config(path, ["training.max_steps=1"])
    trainer.train(config, tmp_path / "tuned", log=lambda line: None, init_from=source)

    model = load_trained(source).models[0]
    tokenizer = load_trained(source).tokenizer
    data = load_training_data(config, tokenizer, tmp_path / "tuned" / "prepared", print)
    first = data.plan(0).batch(0)
    batch = data.features(first.corpus, first.line)._asdict()
    loss_sum, tokens = masked_cross_entropy(
        batch["target_out"], model(batch, training=True), config.training.label_smoothing
    )
    np.testing.assert_allclose(first_losses[0], float(loss_sum / tokens), rtol=1e-6)

    with pytest.raises(NmtError, match=r"another shape.*model.hidden_size: 16 -> 32"):
        trainer.train(
            load_config(path, ["model.hidden_size=32"]), tmp_path / "other", init_from=source
        )


def test_validation_loss_and_bleu_use_the_same_sentences_and_warn_once(toy_data, tmp_path, capsys):
    long = "nine hundred ninety nine thousand nine hundred ninety nine " * 3
    (tmp_path / "v.en").write_text("one\n" + long.strip() + "\ntwo hundred\n")
    (tmp_path / "v.de").write_text("eins\nneun\nzweihundert\n")
    path = write_config(tmp_path, toy_data, steps=10)
    config = load_config(
        path,
        [
            f"data.valid_source={tmp_path / 'v.en'}",
            f"data.valid_target={tmp_path / 'v.de'}",
            "data.max_source_length=12",
        ],
    )
    lines: list[str] = []
    trainer.train(config, tmp_path / "run", log=lines.append)
    pairs = validation_set(config, load_trained(tmp_path / "run").tokenizer)
    assert pairs.sources == ["one", "two hundred"] and pairs.left_out == 1
    warnings = [x for x in lines if "validation pairs are over" in x]
    validations = [x for x in lines if x.startswith("validation at step")]
    assert len(warnings) == len(validations) == 2
    assert "truncated" not in capsys.readouterr().err


def test_every_validation_set_is_scored_and_the_first_picks_best(toy_data, tmp_path):
    folder = toy_data["train.en"].parent
    sets = (
        f"data.valid=[{{source: {folder}/valid.en, target: {folder}/valid.de}},"
        f" {{source: {folder}/test.en, target: {folder}/test.de, name: held-out}}]"
    )
    overrides = ["data.valid_source=", "data.valid_target=", sets]
    config = load_config(write_config(tmp_path, toy_data, steps=10), overrides)
    lines: list[str] = []
    trainer.train(config, tmp_path / "run", log=lines.append)

    def scores(prefix):
        found = [
            re.search(r"loss ([\d.]+), BLEU ([\d.]+)", x) for x in lines if x.startswith(prefix)
        ]
        return [(float(m.group(1)), float(m.group(2))) for m in found]

    first, second = scores("validation at step"), scores("validation of held-out at step")
    assert len(first) == len(second) == 2, lines  # steps 5 and 10
    assert [loss for loss, _ in first] != [loss for loss, _ in second]  # other sentences
    best = progress_of(str(tmp_path / "run" / "checkpoints" / "ckpt-10"))["best_bleu"]
    assert best == pytest.approx(max(bleu for _, bleu in first), abs=0.005)


def test_train_log_is_timestamped_and_starts_with_devices_and_precision(toy_data, tmp_path):
    path = write_config(tmp_path, toy_data, steps=5)
    trainer.train(load_config(path, ["model.compute_dtype=bfloat16"]), tmp_path / "run", log=print)
    log = (tmp_path / "run" / "train.log").read_text().splitlines()
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d "
    assert all(re.match(stamp, line) for line in log)
    assert "training on" in log[0] and "CPU" in log[0] and "bfloat16 compute" in log[0]
    assert any(re.match(stamp + r"step +5 ", line) for line in log)


def test_train_log_says_which_precision_auto_chose_and_why(toy_data, tmp_path, monkeypatch):
    """A recipe's `compute_dtype: auto` on a CPU without native bfloat16 trains in float32."""
    cpu_info = tmp_path / "cpuinfo"
    cpu_info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n")
    monkeypatch.setattr(precision, "CPU_INFO", cpu_info)
    path = write_config(tmp_path, toy_data, steps=2)
    trainer.train(load_config(path, ["model.compute_dtype=auto"]), tmp_path / "run", log=print)
    first = (tmp_path / "run" / "train.log").read_text().splitlines()[0]
    assert "float32 compute with float32 weights (auto: no native bfloat16 here" in first


def test_a_run_too_slow_for_max_minutes_ends_its_schedule_and_resumes_the_fit(
    toy_data, tmp_path, monkeypatch
):
    # A clock that says each step takes one second: 20 steps take 20 s, so 0.97 * 60 / 1 = 58
    # of 200 steps fit in a minute, rounded down to a checkpoint step (every 5): 55.
    clock = iter(range(10**6))
    monkeypatch.setattr(trainer, "time", SimpleNamespace(monotonic=lambda: float(next(clock))))
    overrides = [
        "training.max_minutes=1",
        "training.fit_schedule_at=20",
        "training.validate_every=10",
        "training.decay=exponential",
        "training.decay_start=100",
        "training.decay_steps=20",
    ]
    config = load_config(write_config(tmp_path, toy_data, steps=200), overrides)
    lines: list[str] = []
    result = trainer.train(config, tmp_path / "run", log=lines.append)
    assert (result.steps, result.stopped_because) == (55, "max_steps")
    assert any("55 of 200 fit in 1" in line for line in lines)
    # The last step ran at the rate step 200 of the full schedule has: halved 5 times.
    last = [line for line in lines if line.startswith("step      55")][0]
    assert f"lr {1e-3 * 0.5**5:.2e}" in last
    again = trainer.train(config, tmp_path / "run", log=lines.append)
    assert (again.steps, again.stopped_because) == (55, "max_steps")  # the fit was saved
