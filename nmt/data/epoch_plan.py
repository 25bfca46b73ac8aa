"""The plan of one training epoch: which pairs of which corpus go into which batch, in order.

Made from the prepared corpora's lengths alone, in NumPy, in about a second for millions of
pairs, and the same on every worker and every rerun for the same seed and epoch:
1. each corpus keeps its pairs with two non-empty sides within the length limits, and takes
   `weight` x that many of them (2: each twice; 0.5: a random half, another one every epoch);
2. the pairs of all corpora are shuffled together (a permutation of the whole epoch), so a batch
   can hold pairs from anywhere in any corpus;
3. consecutive windows of `window` shuffled pairs are sorted into length buckets of
   `bucket_width` and cut into batches of `batch_size` pairs or `batch_tokens` padded tokens;
4. the batches of the whole epoch are shuffled.
A position in the epoch is a number of batches of this plan, which does not depend on how many
replicas or workers train: resuming anywhere is a slice, never a replay.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np


class CorpusLengths(NamedTuple):
    """What the plan needs of one prepared corpus."""

    lengths: np.ndarray  # int32 [N, 2]: source and target pieces of each line
    weight: float
    tagged: bool  # a tag piece goes before each source sentence


class Batching(NamedTuple):
    """The data config's batching settings."""

    max_source_length: int
    max_target_length: int
    batch_size: int  # pairs per batch; 0: by batch_tokens
    batch_tokens: int  # pairs x longest side (with BOS/EOS) per batch
    bucket_width: int
    window: int  # pairs sorted into buckets together


class PlannedBatch(NamedTuple):
    """One batch of a plan: its pairs, and where it starts among the plan's entries (a number
    unique to it within the epoch)."""

    start: int
    corpus: np.ndarray  # int32 [B]
    line: np.ndarray  # int32 [B]


class EpochPlan(NamedTuple):
    """The epoch's pairs in training order; batch b is entries starts[b]:starts[b + 1]."""

    corpus: np.ndarray  # int32 [P]: index of the pair's corpus
    line: np.ndarray  # int32 [P]: 0-based line of the pair in its corpus files
    starts: np.ndarray  # int64 [B + 1]

    @property
    def batches(self) -> int:
        return len(self.starts) - 1

    def batch(self, index: int) -> PlannedBatch:
        a, b = int(self.starts[index]), int(self.starts[index + 1])
        return PlannedBatch(a, self.corpus[a:b], self.line[a:b])


def usable_lines(corpus: CorpusLengths, batching: Batching) -> np.ndarray:
    """Lines with both sides non-empty and within the length limits (the tag counts)."""
    source = corpus.lengths[:, 0] + int(corpus.tagged)
    target = corpus.lengths[:, 1]
    keep = (corpus.lengths[:, 0] > 0) & (target > 0)
    keep &= (source <= batching.max_source_length) & (target <= batching.max_target_length)
    return np.flatnonzero(keep)


def plan_epoch(
    corpora: Sequence[CorpusLengths], batching: Batching, seed: int, epoch: int
) -> EpochPlan:
    """The batches of epoch `epoch` (0-based) for the training seed `seed`."""
    rng = np.random.default_rng([seed, epoch])
    # int32 for every per-pair array and each freed once used: at 2,000,000 pairs this plan
    # peaks at about 80 MB, and a large corpus must not need much more than its index.
    corpus_ids, lines = [], []
    for index, corpus in enumerate(corpora):
        usable = usable_lines(corpus, batching).astype(np.int32)
        count = round(corpus.weight * len(usable))
        copies, rest = divmod(count, len(usable)) if len(usable) else (0, 0)
        drawn = np.sort(rng.choice(len(usable), rest, replace=False)) if rest else []
        taken = np.concatenate([np.tile(usable, copies), usable[drawn]])
        lines.append(taken)
        corpus_ids.append(np.full(len(taken), index, np.int32))
    corpus_id = np.concatenate(corpus_ids) if corpus_ids else np.zeros(0, np.int32)
    line = np.concatenate(lines) if lines else np.zeros(0, np.int32)
    del corpus_ids, lines
    order = rng.permutation(len(line))
    corpus_id, line = corpus_id[order], line[order]
    del order

    # Longest side with BOS/EOS, as padded: source (+ tag), target_in = BOS y.
    bucket = np.zeros(len(line), np.int32)
    for index, corpus in enumerate(corpora):
        mine = corpus_id == index
        pieces = corpus.lengths[line[mine]]
        bucket[mine] = np.maximum(pieces[:, 0] + int(corpus.tagged), pieces[:, 1] + 1)
        del mine, pieces
    bucket -= 1
    bucket //= batching.bucket_width
    window = np.arange(len(line), dtype=np.int32) // batching.window
    by_length = np.lexsort((bucket, window))  # stable: the shuffled order within a bucket
    corpus_id, line = corpus_id[by_length], line[by_length]
    bucket, window = bucket[by_length], window[by_length]
    del by_length

    starts = _cut_batches(bucket, window, batching)
    del bucket, window
    shuffled = rng.permutation(len(starts) - 1)
    sizes = np.diff(starts)[shuffled]
    new_starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    # Entry q of new batch k is entry q - new_starts[k] of old batch shuffled[k].
    index = np.arange(len(line), dtype=np.int32)
    index += np.repeat((starts[shuffled] - new_starts[:-1]).astype(np.int32), sizes)
    return EpochPlan(corpus_id[index], line[index], new_starts)


def _cut_batches(bucket: np.ndarray, window: np.ndarray, batching: Batching) -> np.ndarray:
    """Batch starts over pairs sorted by (window, bucket): a batch never spans two buckets or
    windows, and holds `batch_size` pairs, or as many as keep pairs x the bucket's longest
    length within `batch_tokens`. (int32 throughout: these arrays are the plan's peak memory.)"""
    if not len(bucket):
        return np.zeros(1, np.int64)
    positions = np.arange(len(bucket), dtype=np.int32)
    new_group = np.empty(len(bucket), bool)
    new_group[0] = True
    new_group[1:] = (bucket[1:] != bucket[:-1]) | (window[1:] != window[:-1])
    group_start = np.maximum.accumulate(np.where(new_group, positions, np.int32(0)))
    if batching.batch_size > 0:
        size = np.int32(batching.batch_size)
    else:
        size = np.maximum(1, batching.batch_tokens // ((bucket + 1) * batching.bucket_width))
    slot = (positions - group_start) // size
    del positions, group_start
    new_group[1:] |= slot[1:] != slot[:-1]
    return np.append(np.flatnonzero(new_group), len(bucket)).astype(np.int64)


def replica_batches(plan: EpochPlan, position: int, replicas: int) -> list[list[PlannedBatch]]:
    """Each training step's batches from plan batch `position` on: a list per step of
    `replicas` batches, replica r's at index r.

    A step takes the next `replicas` batches of the plan. When fewer are left at the end of the
    epoch, their pairs are split evenly among the replicas, so that every pair is read once and
    every replica gets a batch; with fewer pairs left than replicas, those few wait for the next
    epoch's plan (they are still in it).
    """
    steps = []
    for first in range(position, plan.batches, replicas):
        if first + replicas <= plan.batches:
            steps.append([plan.batch(first + r) for r in range(replicas)])
            continue
        a, b = plan.starts[first], plan.starts[-1]
        if b - a < replicas:
            break
        cuts = np.linspace(a, b, replicas + 1).astype(np.int64)
        steps.append(
            [
                PlannedBatch(int(x), plan.corpus[x:y], plan.line[x:y])
                for x, y in zip(cuts[:-1], cuts[1:])
            ]
        )
    return steps
