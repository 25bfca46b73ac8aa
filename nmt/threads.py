"""TensorFlow's thread pools: how wide, set before TensorFlow runs its first op."""

from __future__ import annotations

import os


def cores() -> int:
    """The cores this process may run on (its CPU affinity, e.g. under taskset or a container)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def search_thread_pools(searches: int) -> tuple[int, int] | None:
    """(intra-op, inter-op) pool sizes for `searches` beam searches run side by side, or None
    to keep TensorFlow's choice (about one thread per core in each pool) for a single one.

    One search is a chain of small ops that a pool as wide as the machine mostly spends
    synchronising, so each search gets an equal share of the cores as its intra-op threads;
    on 2 cores one thread each decodes more sentences per second than two searches sharing
    two-thread pools (BENCHMARKS.md sitting M). The inter-op pool must hold every search, or
    they wait for each other.
    """
    if searches < 2:
        return None
    return max(1, cores() // searches), max(cores(), searches)


def set_thread_pools(pools: tuple[int, int] | None) -> bool:
    """Sizes TensorFlow's (intra-op, inter-op) pools; None leaves them as they are.

    Returns:
        False when TensorFlow has already run an op in this process (its pools exist and keep
        their size, as when `nmt.cli.main` is called from a Python program), else True.
    """
    if pools is None:
        return True
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(pools[0])
        tf.config.threading.set_inter_op_parallelism_threads(pools[1])
    except RuntimeError:  # "... cannot be modified after initialization"
        return False
    return True
