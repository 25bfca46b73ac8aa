"""The epoch plan: every usable pair once, the whole corpus shuffled, several corpora mixed by
weight, batches within their limits, and positions that mean the same on any replica count."""

from __future__ import annotations

import numpy as np
import pytest

from nmt.data.epoch_plan import Batching, CorpusLengths, plan_epoch, replica_batches

BATCHING = Batching(
    max_source_length=50,
    max_target_length=50,
    batch_size=16,
    batch_tokens=0,
    bucket_width=4,
    window=2000,
)


def _corpus(size: int, seed: int, weight: float = 1.0, tagged: bool = False) -> CorpusLengths:
    rng = np.random.default_rng(seed)
    return CorpusLengths(rng.integers(1, 40, size=(size, 2)), weight, tagged)


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks from 1, ties sharing their average rank (as Spearman's coefficient needs)."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return (ends - (counts - 1) / 2)[inverse]


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.corrcoef(_ranks(x), _ranks(y))[0, 1])


def test_every_usable_pair_is_in_the_epoch_once():
    lengths = np.array([[3, 4], [0, 5], [6, 0], [60, 3], [3, 60], [10, 10], [50, 50]])
    plan = plan_epoch([CorpusLengths(lengths, 1.0, False)], BATCHING, seed=1, epoch=0)
    assert sorted(plan.line.tolist()) == [0, 5, 6]  # empty sides and overlong pairs left out
    tagged = plan_epoch([CorpusLengths(lengths, 1.0, True)], BATCHING, seed=1, epoch=0)
    assert sorted(tagged.line.tolist()) == [0, 5]  # the tag makes 50 source pieces 51


def test_the_order_is_seeded_by_seed_and_epoch():
    corpus = [_corpus(3000, 0)]

    def lines(seed, epoch):
        return plan_epoch(corpus, BATCHING, seed, epoch).line.tolist()

    assert lines(1, 0) == lines(1, 0)
    assert lines(1, 0) != lines(1, 1) and lines(1, 0) != lines(2, 0)
    assert sorted(lines(1, 0)) == sorted(lines(1, 1)) == list(range(3000))


def test_the_whole_corpus_is_shuffled_and_three_blocks_mix_by_their_share():
    """The order check of issue 38 on three concatenated corpora of 45/50/5%: batch number and
    line number uncorrelated, each block's share of every 500 batches near its share."""
    sizes = [45_000, 50_000, 5_000]
    lengths = np.random.default_rng(0).integers(1, 40, size=(sum(sizes), 2))
    plan = plan_epoch([CorpusLengths(lengths, 1.0, False)], BATCHING, seed=1234, epoch=0)
    batch_of = np.repeat(np.arange(plan.batches), np.diff(plan.starts))
    first = plan.starts[2000]
    assert abs(_spearman(batch_of[:first], plan.line[:first])) <= 0.1
    block = np.searchsorted(np.cumsum(sizes), plan.line, side="right")
    shares = np.array(sizes) / sum(sizes)
    for start in range(0, 2000, 500):
        a, b = plan.starts[start], plan.starts[start + 500]
        seen = np.bincount(block[a:b], minlength=3) / (b - a)
        assert np.all(np.abs(seen - shares) <= 0.03), (start, seen)


def test_corpora_are_mixed_by_weight():
    corpora = [_corpus(1000, 0, weight=2.0), _corpus(1000, 1, weight=0.5)]
    plans = [plan_epoch(corpora, BATCHING, seed=3, epoch=e) for e in (0, 1)]
    for plan in plans:
        first = plan.line[plan.corpus == 0]
        assert np.array_equal(np.bincount(first, minlength=1000), np.full(1000, 2))
        second = plan.line[plan.corpus == 1]
        assert len(second) == 500 and len(set(second.tolist())) == 500
    halves = [set(plan.line[plan.corpus == 1].tolist()) for plan in plans]
    assert halves[0] != halves[1], "another half of the down-weighted corpus every epoch"
    # Both corpora are spread over the whole epoch, not one after the other.
    batch_of = np.repeat(np.arange(plans[0].batches), np.diff(plans[0].starts))
    assert abs(_spearman(batch_of, plans[0].corpus)) < 0.1


def test_batches_keep_to_their_size_and_their_bucket():
    corpus = [_corpus(5000, 4)]
    plan = plan_epoch(corpus, BATCHING, seed=1, epoch=0)
    assert np.diff(plan.starts).max() == 16
    by_tokens = BATCHING._replace(batch_size=0, batch_tokens=300)
    plan = plan_epoch(corpus, by_tokens, seed=1, epoch=0)
    for index in range(plan.batches):
        batch = plan.batch(index)
        longest = np.maximum(corpus[0].lengths[batch.line, 0], corpus[0].lengths[batch.line, 1] + 1)
        assert len(batch.line) * longest.max() <= 300
        assert len(set(((longest - 1) // 4).tolist())) == 1  # one length bucket


@pytest.mark.parametrize("stop_at", [0, 7, 150, 181])
def test_resuming_on_two_replicas_reads_every_pair_of_the_epoch_once(stop_at):
    """Trained on 1 replica up to batch `stop_at`, resumed on 2: every pair exactly once, and
    every step gives both replicas a batch (the odd batches at the end are split in two)."""
    corpus = [_corpus(2900, 5)]
    plan = plan_epoch(corpus, BATCHING, seed=9, epoch=0)
    assert plan.batches == 192  # an odd number of batches left after 7 and 181
    before = [batch for step in replica_batches(plan, 0, 1)[:stop_at] for batch in step]
    after = replica_batches(plan, stop_at, 2)
    assert all(len(step) == 2 and all(len(b.line) for b in step) for step in after)
    seen = np.concatenate([b.line for b in before] + [b.line for step in after for b in step])
    assert sorted(seen.tolist()) == list(range(2900))
