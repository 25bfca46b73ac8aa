"""Data-parallel training with `tf.distribute`: one device, several GPUs, or several machines.

`training.distribution` picks the strategy:
- "none": TensorFlow's default strategy (one device); the same code path, no communication.
- "mirrored": `MirroredStrategy`, one replica per local GPU.
- "multi_worker": `MultiWorkerMirroredStrategy`; each process is one worker, and the cluster
  comes from the `TF_CONFIG` environment variable (README, "Training on several machines").

Every replica trains on its own batches; gradients are summed across replicas and each loss
is divided by the global number of target tokens, so the update is the one a single device
would make on all those batches together. The chief worker writes the run directory; the
others write their (required) checkpoint copies to a scratch folder and delete them.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import NamedTuple

import tensorflow as tf

from nmt.errors import NmtError

STRATEGIES = ("none", "mirrored", "multi_worker")


class Worker(NamedTuple):
    """This process's place in the cluster."""

    index: int  # 0 .. count - 1, the chief is 0
    count: int  # number of workers (processes)
    is_chief: bool


def make_strategy(kind: str) -> tf.distribute.Strategy:
    """The strategy named by `training.distribution`; create it before any other TF work.

    Raises:
        NmtError: "multi_worker" without a usable TF_CONFIG.
    """
    if kind == "none":
        return tf.distribute.get_strategy()
    if kind == "mirrored":
        if tf.config.list_logical_devices("GPU"):
            return tf.distribute.MirroredStrategy()
        # No GPU: every logical CPU device (one, unless the program split the CPU in several).
        cpus = [device.name for device in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(cpus)
    if kind == "multi_worker":
        try:
            cluster = json.loads(os.environ["TF_CONFIG"])["cluster"]
        except (KeyError, ValueError, TypeError):
            raise NmtError(
                "training.distribution is multi_worker but TF_CONFIG is missing or not JSON "
                'with a "cluster" and a "task"; see README, "Training on several machines"'
            ) from None
        if not cluster.get("worker") and not cluster.get("chief"):
            raise NmtError('TF_CONFIG names no "worker" or "chief" addresses')
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"`kind` must be one of {STRATEGIES}, got {kind!r}")


def worker_of(strategy: tf.distribute.Strategy) -> Worker:
    """Which worker this process is (worker 0 of 1 without a cluster)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return Worker(0, 1, True)
    spec = resolver.cluster_spec().as_dict()
    task_type, task_id = resolver.task_type, resolver.task_id or 0
    chiefs = len(spec.get("chief", []))
    count = chiefs + len(spec.get("worker", []))
    if task_type == "chief":
        return Worker(0, count, True)
    index = chiefs + task_id
    return Worker(index, count, index == 0)


def make_stop_vote(strategy: tf.distribute.Strategy):
    """vote(flag) -> True when any worker passed True; all workers must vote at each step."""

    @tf.function
    def vote(flag):
        ballots = strategy.run(lambda: tf.identity(flag))
        return strategy.reduce("sum", ballots, axis=None) > 0

    return lambda flag: bool(vote(tf.constant(1.0 if flag else 0.0)))


def scratch_dir(run_dir: Path, worker: Worker) -> Path:
    """Where this worker writes checkpoints: the run directory for the chief."""
    return run_dir if worker.is_chief else run_dir / "workers" / str(worker.index)


def discard_scratch(run_dir: Path, worker: Worker) -> None:
    """Deletes a non-chief worker's checkpoint copies (only the chief's are kept)."""
    if not worker.is_chief:
        shutil.rmtree(scratch_dir(run_dir, worker), ignore_errors=True)


def wait_for(path: Path, ready, what: str, timeout_seconds: float = 600.0):
    """Polls `ready(path)` until it returns a value (non-chief workers wait for the chief).

    Raises:
        NmtError: nothing ready after `timeout_seconds`.
    """
    deadline = time.monotonic() + timeout_seconds
    while True:
        try:
            return ready(path)
        except NmtError:
            if time.monotonic() > deadline:
                raise NmtError(
                    f"waited {timeout_seconds:.0f}s for the chief worker to write {what} at "
                    f"{path}; is the run directory on a filesystem every worker sees?"
                ) from None
            time.sleep(1.0)
