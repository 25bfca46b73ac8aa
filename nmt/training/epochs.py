"""The batches of one training epoch, seeded by epoch and resumable at any batch."""

from __future__ import annotations

import tensorflow as tf

from nmt.config import DataConfig
from nmt.data.pipeline import training_dataset
from nmt.data.tokenizer import Tokenizer
from nmt.training.distribution import shard_batches


def batches(
    data: DataConfig,
    tokenizer: Tokenizer,
    source: str,
    target: str,
    seed: int = 0,
    shuffle: bool = True,
    max_pairs: int = 0,
    sample: bool = False,
) -> tf.data.Dataset:
    """`training_dataset` with the config's data settings (one epoch); `sample`: segment by
    the config's subword sampling (training batches, not validation)."""
    return training_dataset(
        source,
        target,
        tokenizer,
        max_source_length=data.max_source_length,
        max_target_length=data.max_target_length,
        batch_size=data.batch_size,
        batch_tokens=data.batch_tokens,
        bucket_width=data.bucket_width,
        shuffle_buffer=data.shuffle_buffer,
        seed=seed,
        shuffle=shuffle,
        max_pairs=max_pairs,
        sampling_alpha=data.sampling_alpha if sample else 0.0,
    )


def epoch_batches(
    data: DataConfig,
    tokenizer: Tokenizer,
    strategy: tf.distribute.Strategy,
    seed: int,
    skip: int,
):
    """One epoch in the order `seed` gives it, from batch `skip` on, each replica's batches as
    `strategy` distributes them (the training seed plus the epoch number makes every epoch's
    order different and every rerun's the same)."""

    def replica_batches(context: tf.distribute.InputContext) -> tf.data.Dataset:
        dataset = batches(
            data, tokenizer, data.train_source, data.train_target, seed=seed, sample=True
        )
        local_replicas = context.num_replicas_in_sync // context.num_input_pipelines
        dataset = shard_batches(
            dataset,
            context.num_replicas_in_sync,
            first=context.input_pipeline_id * local_replicas,
            count=local_replicas,
        )
        return dataset.skip(skip * local_replicas)

    return strategy.distribute_datasets_from_function(replica_batches)
