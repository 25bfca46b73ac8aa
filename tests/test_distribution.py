"""tf.distribute training: batch sharding, and two workers training together over loopback."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from nmt.training.distribution import shard_batches

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
from nmt.training import trainer
trainer.discard_scratch = lambda run_dir, worker: None
trainer.train(load_config(sys.argv[1]), sys.argv[2])
"""


def test_shard_batches_gives_every_worker_the_same_number_of_steps():
    batches = tf.data.Dataset.range(7)
    shards = [list(shard_batches(batches, 2, first=w).as_numpy_iterator()) for w in (0, 1)]
    assert shards == [[0, 2, 4], [1, 3, 5]]  # the odd last batch would leave worker 0 waiting
    assert list(shard_batches(batches, 1, first=0).as_numpy_iterator()) == list(range(7))


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
