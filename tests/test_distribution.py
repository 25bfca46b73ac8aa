"""tf.distribute training: two workers on loopback, and two replicas on logical CPUs."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

CONFIG = """\
tokenizer: {{vocab_size: 60}}
data:
  train_source: {data}/train.en
  train_target: {data}/train.de
  valid_source: {data}/valid.en
  valid_target: {data}/valid.de
  batch_size: 16
  shuffle_buffer: 500
model: {{embedding_size: 16, hidden_size: 32, encoder_layers: 2, decoder_layers: 2, dropout: 0.1}}
training:
  learning_rate: 0.005
  max_steps: 30
  max_epochs: 0
  log_every: 5
  validate_every: 20
  valid_max_sentences: 8
  checkpoint_every: 10
  distribution: multi_worker
"""

# Worker 1 keeps the checkpoint copies it would delete, so the test can compare its weights.
KEEP_COPIES = """\
import sys
from nmt.config import load_config
from nmt.training import callbacks, trainer
callbacks.discard_scratch = lambda run_dir, worker: None
trainer.train(load_config(sys.argv[1]), sys.argv[2])
"""


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _checkpoint_tensors(path: Path) -> dict[str, np.ndarray]:
    reader = tf.train.load_checkpoint(str(path))
    return {
        name: reader.get_tensor(name)
        for name in reader.get_variable_to_shape_map()
        # Dropout seed states advance with each worker's own batch lengths; they may differ.
        if name.startswith(("model/", "optimizer/"))
    }


@pytest.mark.slow
def test_two_workers_on_loopback_train_one_model_together(toy_data, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(CONFIG.format(data=toy_data["train.en"].parent))
    run_dir = tmp_path / "run"
    cluster = {"worker": [f"localhost:{port}" for port in _free_ports(2)]}
    commands = [
        [sys.executable, "-m", "nmt", "train", "--config", str(config), "--run-dir", str(run_dir)],
        [sys.executable, "-c", KEEP_COPIES, str(config), str(run_dir)],
    ]
    workers = [
        subprocess.Popen(
            command,
            env={
                **os.environ,
                "TF_CONFIG": json.dumps(
                    {"cluster": cluster, "task": {"type": "worker", "index": i}}
                ),
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i, command in enumerate(commands)
    ]
    outputs = [worker.communicate(timeout=300) for worker in workers]
    for worker, (out, err) in zip(workers, outputs):
        assert worker.returncode == 0, f"{out}\n{err}"
    chief_log = outputs[0][0]
    assert "worker 0 of 2, 2 replicas" in chief_log
    losses = [
        float(line.split("| loss ")[1].split()[0])
        for line in chief_log.splitlines()
        if line.startswith("step")
    ]
    assert len(losses) == 6 and losses[-1] < losses[0], chief_log

    # The chief alone wrote the run directory; the other worker wrote only its scratch copy.
    chief = tf.train.get_checkpoint_state(str(run_dir / "checkpoints"))
    assert Path(chief.model_checkpoint_path).name == "ckpt-30"
    assert sorted(p.name for p in (run_dir / "workers").iterdir()) == ["1"]
    copy = run_dir / "workers" / "1" / "checkpoints" / "ckpt-30"
    ours, theirs = (
        _checkpoint_tensors(run_dir / "checkpoints" / "ckpt-30"),
        _checkpoint_tensors(copy),
    )
    assert len(ours) > 10 and ours.keys() == theirs.keys()
    for name in ours:
        np.testing.assert_array_equal(ours[name], theirs[name], err_msg=name)


# Two logical CPU devices must be made before TensorFlow starts, hence a fresh process.
TWO_CPUS = """\
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
"""

ONE_STEP = (
    TWO_CPUS
    + """\
import sys
import keras
import numpy as np
from nmt.config import ModelConfig
from nmt.model.seq2seq import build_model
from nmt.training.distribution import make_strategy
from nmt.training.steps import make_train_step

rng = np.random.default_rng(0)
lengths = [5, 3, 6, 2]
batch = {name: np.zeros((4, 7), np.int32) for name in ("source", "target_in", "target_out")}
for row, n in enumerate(lengths):
    batch["source"][row, :n] = rng.integers(4, 30, n)
    batch["target_in"][row, : n + 1] = rng.integers(4, 30, n + 1)
    batch["target_out"][row, : n + 1] = rng.integers(4, 30, n + 1)

def one_step(kind):
    strategy = make_strategy(kind)
    keras.utils.set_random_seed(1)
    with strategy.scope():
        model = build_model(ModelConfig(embedding_size=8, hidden_size=16, dropout=0.0), 30, 30)
        # Plain SGD: the update is the gradient itself, so a difference cannot hide in (or be
        # blown up by) Adam's normalization of near-zero gradients.
        optimizer = keras.optimizers.SGD(learning_rate=1.0)
        optimizer.build(model.trainable_variables)
    dataset = strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensor_slices(batch).batch(4)
    )
    step = make_train_step(
        model, optimizer, 0.1, strategy=strategy, input_signature=[dataset.element_spec]
    )
    loss, _, _ = step(next(iter(dataset)))
    weights = [v.numpy() for v in model.trainable_variables]
    # Not the gradient norm: on one device the embedding gradients stay IndexedSlices, whose
    # repeated rows tf.linalg.global_norm counts one by one (0.272602 vs 0.272725 here); the
    # replicas sum dense gradients. Clipping is off at this norm, so the updates agree.
    return strategy.num_replicas_in_sync, float(loss), weights

replicas, mirrored_loss, mirrored = one_step("mirrored")
_, single_loss, single = one_step("none")
assert replicas == 2, replicas
np.testing.assert_allclose(mirrored_loss, single_loss, rtol=1e-6)
for a, b in zip(mirrored, single):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
print("same update")
"""
)


@pytest.mark.slow
def test_one_mirrored_step_on_two_cpus_equals_one_step_on_the_whole_batch():
    result = subprocess.run(
        [sys.executable, "-c", ONE_STEP], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0 and "same update" in result.stdout, result.stderr[-3000:]


MIRRORED_TRAINING = (
    TWO_CPUS
    + """\
import sys
from nmt.config import load_config
from nmt.training.trainer import train
result = train(load_config(sys.argv[1], ["training.distribution=mirrored"]), sys.argv[2])
print("stopped", result.stopped_because, result.steps)
"""
)


@pytest.mark.slow
def test_mirrored_training_on_two_logical_cpus_resumes_a_one_replica_run_where_it_was(
    toy_data, tmp_path
):
    """Trained 10 steps on one device, resumed on 2 replicas: the epoch goes on from batch 10
    of its plan (no replay, no warning), each step then taking the next 2 batches."""
    config = tmp_path / "c.yaml"
    config.write_text(
        CONFIG.format(data=toy_data["train.en"].parent).replace("multi_worker", "none")
    )
    single = [sys.executable, "-m", "nmt", "train", "--config", str(config)]
    single += ["--run-dir", str(tmp_path / "run"), "--set", "training.max_steps=10"]
    subprocess.run(single, check=True, capture_output=True, timeout=300)
    result = subprocess.run(
        [sys.executable, "-c", MIRRORED_TRAINING, str(config), str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "(2 replicas" in result.stdout and "stopped max_steps 30" in result.stdout
    assert "steps with 2 replicas, from batch 10" in result.stdout
    assert "changes the order" not in result.stdout + result.stderr
    reader = tf.train.load_checkpoint(str(tmp_path / "run" / "checkpoints" / "ckpt-30"))
    position = [k for k in reader.get_variable_to_shape_map() if "batches_in_epoch" in k]
    assert reader.get_tensor(position[0]) == 10 + 2 * 20
    losses = [
        float(x.split("| loss ")[1].split()[0])
        for x in result.stdout.splitlines()
        if x.startswith("step")
    ]
    assert losses[-1] < losses[0], result.stdout
