"""tf.data input pipelines over text files, built as small `dataset -> dataset` transformations.

Text is read and tokenized in a streaming generator, so memory does not grow with file size
(only the shuffle buffer is held). Batches are right-padded with PAD_ID and grouped by length
so that little compute goes to padding. Validation reads its files this way; training reads
prepared corpora instead (nmt/data/training_data.py), tokenized once rather than every epoch.

Shapes: B batch, T_s source time, T_t target time.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import tensorflow as tf

from nmt.constants import BOS_ID, EOS_ID, PAD_ID
from nmt.data.text import read_parallel
from nmt.data.tokenizer import Tokenizer

Transformation = Callable[[tf.data.Dataset], tf.data.Dataset]
_ENCODE_CHUNK = 2048


def _encoded_chunks(
    source: Path, target: Path, tokenizer: Tokenizer
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Yields chunks of pairs as (source ids, source lengths, target ids, target lengths).

    Whole chunks cross from Python into tf.data: one element per pair cost ~0.4 ms each,
    which stalled training at every epoch start while the shuffle buffer filled.
    """
    pairs = read_parallel(source, target)
    while True:
        chunk = list(itertools.islice(pairs, _ENCODE_CHUNK))
        if not chunk:
            return
        texts = [s for s, _ in chunk], [t for _, t in chunk]
        sources, targets = tokenizer.encode_source(texts[0]), tokenizer.encode_target(texts[1])
        kept = [(s, t) for s, t in zip(sources, targets) if s and t]  # empty sides teach nothing
        if kept:
            yield (
                np.fromiter(itertools.chain.from_iterable(s for s, _ in kept), np.int32),
                np.fromiter((len(s) for s, _ in kept), np.int64),
                np.fromiter(itertools.chain.from_iterable(t for _, t in kept), np.int32),
                np.fromiter((len(t) for _, t in kept), np.int64),
            )


def parallel_dataset(
    source: str | Path, target: str | Path, tokenizer: Tokenizer
) -> tf.data.Dataset:
    """Streams (source ids [T_s], target ids [T_t]) pairs from two aligned text files."""
    source, target = Path(source), Path(target)
    chunks = tf.data.Dataset.from_generator(
        lambda: _encoded_chunks(source, target, tokenizer),
        output_signature=(
            tf.TensorSpec([None], tf.int32),
            tf.TensorSpec([None], tf.int64),
            tf.TensorSpec([None], tf.int32),
            tf.TensorSpec([None], tf.int64),
        ),
    )

    def split(source_ids, source_lengths, target_ids, target_lengths):
        return (
            tf.RaggedTensor.from_row_lengths(source_ids, source_lengths),
            tf.RaggedTensor.from_row_lengths(target_ids, target_lengths),
        )

    return chunks.map(split).unbatch()


def filter_by_length(max_source_length: int, max_target_length: int) -> Transformation:
    """Drops pairs longer than the limits (in pieces, before BOS/EOS are added)."""

    def keep(source: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
        return tf.logical_and(
            tf.size(source) <= max_source_length, tf.size(target) <= max_target_length
        )

    return lambda dataset: dataset.filter(keep)


def add_decoder_inputs() -> Transformation:
    """Maps (source, target) to the model's features: target_in = BOS y, target_out = y EOS."""

    def features(source: tf.Tensor, target: tf.Tensor) -> dict[str, tf.Tensor]:
        return {
            "source": source,
            "target_in": tf.concat([[BOS_ID], target], axis=0),
            "target_out": tf.concat([target, [EOS_ID]], axis=0),
        }

    return lambda dataset: dataset.map(features, num_parallel_calls=tf.data.AUTOTUNE)


def bucket_boundaries(max_length: int, bucket_width: int) -> list[int]:
    """Exclusive upper lengths of the buckets: width+1, 2*width+1, ... past max_length."""
    return list(range(bucket_width + 1, max_length + bucket_width + 1, bucket_width))


def batch_by_length(
    max_length: int, bucket_width: int, batch_size: int = 0, batch_tokens: int = 0
) -> Transformation:
    """Groups examples of similar length into right-padded batches.

    Args:
        max_length: longest sequence (features include BOS/EOS) the data can hold.
        bucket_width: length range of one bucket.
        batch_size: sentences per batch; when 0, `batch_tokens` decides.
        batch_tokens: padded tokens per batch (sentences x longest side).
    """
    boundaries = bucket_boundaries(max_length, bucket_width)
    if batch_size > 0:
        sizes = [batch_size] * (len(boundaries) + 1)
    else:
        uppers = [b - 1 for b in boundaries] + [max_length + bucket_width]
        sizes = [max(1, batch_tokens // upper) for upper in uppers]

    def length(features: dict[str, tf.Tensor]) -> tf.Tensor:
        return tf.maximum(tf.size(features["source"]), tf.size(features["target_in"]))

    return lambda dataset: dataset.bucket_by_sequence_length(
        length,
        bucket_boundaries=boundaries,
        bucket_batch_sizes=sizes,
        padding_values={"source": PAD_ID, "target_in": PAD_ID, "target_out": PAD_ID},
    )


def training_dataset(
    source: str | Path,
    target: str | Path,
    tokenizer: Tokenizer,
    *,
    max_source_length: int,
    max_target_length: int,
    batch_size: int,
    batch_tokens: int,
    bucket_width: int,
    shuffle_buffer: int,
    seed: int,
    shuffle: bool = True,
    max_pairs: int = 0,
) -> tf.data.Dataset:
    """Length-bucketed, padded batches of two text files (shuffled within a window).

    Each batch is a dict: source [B, T_s], target_in [B, T_t], target_out [B, T_t], int32.
    The order depends only on `seed`. `max_pairs` > 0 keeps only the first pairs that pass the
    length filter (validation uses it to compute the loss on the sentences it decodes).
    """
    dataset = parallel_dataset(source, target, tokenizer)
    dataset = dataset.apply(filter_by_length(max_source_length, max_target_length))
    if max_pairs:
        dataset = dataset.take(max_pairs)
    if shuffle:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=False)
    dataset = dataset.apply(add_decoder_inputs())
    max_length = max(max_source_length, max_target_length + 1)
    dataset = dataset.apply(batch_by_length(max_length, bucket_width, batch_size, batch_tokens))
    # Autotuning's thread sleeps up to 60 s between optimizations, and destroying an iterator
    # waits for that sleep to end: training idled 50-60 s at about half of the epoch ends.
    # There is nothing to tune; AUTOTUNE parallelism then stays at the CPU count.
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.prefetch(tf.data.AUTOTUNE).with_options(options)
