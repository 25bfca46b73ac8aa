"""Forced decoding: the model's log-probability of a given target for a given source.

The target is fed to the decoder token by token with the same `Seq2Seq.step` (and the same
ensemble average of probabilities) that the search uses, so scoring a translation the search
produced gives back the log-probability the search computed for it. Each step also returns the
attention of that target token over the source, which `alignment.py` turns into word alignments.
The pass is inference only: the training graph (`Seq2Seq.call`) is not involved.

The score of a pair is log P(T | S) = sum_t log p(y_t | y_<t, S) over the target's pieces plus
the end-of-sentence token (EOS), exactly what greedy search sums for its own output.

Shapes: B batch, T_s source time, T_t target time (pieces + EOS), V target vocabulary.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from nmt.constants import BOS_ID, EOS_ID, PAD_ID
from nmt.data.tokenizer import Tokenizer
from nmt.decoding.translator import ensemble_step
from nmt.model.seq2seq import Seq2Seq


class ForcedOutput(NamedTuple):
    """What forced decoding gives for one (source, target) pair."""

    log_probs: np.ndarray  # [T_t] log p of each target piece, EOS last
    attention: np.ndarray  # [T_t, T_s] each target token's attention over the source pieces


class PairScore(NamedTuple):
    """The log-probability of one target given its source (pieces and EOS counted)."""

    total: float  # log P(T | S), summed over the pieces and EOS
    mean: float  # total / number of pieces including EOS
    log_probs: np.ndarray  # [T_t] per piece, EOS last


def pair_score(forced: ForcedOutput) -> PairScore:
    """Sums and averages the per-piece log-probabilities of one pair."""
    total = float(np.sum(forced.log_probs, dtype=np.float64))
    return PairScore(total, total / len(forced.log_probs), forced.log_probs)


class ForcedDecoder:
    """Runs teacher-forced passes of a model (or an ensemble) over given targets.

    Args:
        models: one `Seq2Seq`, or several decoded as an ensemble (mean of probabilities, as
            `Translator` does).
        tokenizer: the tokenizer the models were trained with.
        max_source_length: longer sources are cut to this many pieces (with a warning).
        batch_size: pairs per model call; pairs are sorted by length into batches.
    """

    def __init__(
        self,
        models: Seq2Seq | Sequence[Seq2Seq],
        tokenizer: Tokenizer,
        max_source_length: int = 250,
        batch_size: int = 64,
    ):
        if batch_size < 1:
            raise ValueError(f"`batch_size` must be a positive integer, got {batch_size}")
        self.models = list(models) if isinstance(models, Sequence) else [models]
        self.tokenizer = tokenizer
        self.max_source_length = max_source_length
        self.batch_size = batch_size
        # autograph=False: the loop is an explicit tf.while_loop, nothing to convert.
        self._forced = tf.function(
            self._forced_pass,
            input_signature=[tf.TensorSpec([None, None], tf.int32)] * 2,
            autograph=False,
        )

    @classmethod
    def from_translator(cls, translator, batch_size: int | None = None) -> ForcedDecoder:
        """The forced decoder of a loaded `Translator`'s models, tokenizer and source limit."""
        return cls(
            translator.models,
            translator.tokenizer,
            translator.max_source_length,
            batch_size or translator.decoding.batch_size,
        )

    def _forced_pass(self, source: tf.Tensor, target: tf.Tensor):
        """source [B, T_s], target [B, T_t] (EOS-terminated, PAD after) -> log-probs [B, T_t]
        of the target tokens and attention [B, T_t, T_s]."""
        memories, states = zip(*(model.encode(source) for model in self.models))
        weights = [model.step_weights() for model in self.models]
        batch, steps = tf.shape(target)[0], tf.shape(target)[1]
        inputs = tf.concat([tf.fill([batch, 1], BOS_ID), target[:, :-1]], axis=1)  # [B, T_t]
        picked = tf.TensorArray(tf.float32, size=steps)
        attention = tf.TensorArray(tf.float32, size=steps)

        def body(t, states, picked, attention):
            log_probs, states, weights_t = ensemble_step(
                self.models, inputs[:, t], states, memories, weights
            )
            chosen = tf.gather(log_probs, target[:, t], batch_dims=1)  # [B]
            return t + 1, states, picked.write(t, chosen), attention.write(t, weights_t)

        _, _, picked, attention = tf.while_loop(
            lambda t, *_: t < steps, body, (tf.constant(0), tuple(states), picked, attention)
        )
        return tf.transpose(picked.stack()), tf.transpose(attention.stack(), (1, 0, 2))

    def score(
        self,
        sources: Sequence[str],
        targets: Sequence[str],
        progress: Callable[[int], object] | None = None,
    ) -> list[PairScore]:
        """log P(target | source) of text pairs, in input order.

        The target text is tokenized afresh: a translation that was detokenized and tokenized
        again can come back as other pieces than the search chose, and is scored as those.
        """
        return [pair_score(one) for one in self.run(sources, targets, progress)]

    def run(
        self,
        sources: Sequence[str],
        targets: Sequence[str],
        progress: Callable[[int], object] | None = None,
    ) -> list[ForcedOutput]:
        """Tokenizes text pairs and decodes them forced (see `run_ids`)."""
        source_ids = truncate_sources(
            self.tokenizer.encode_source(sources), sources, self.max_source_length
        )
        return self.run_ids(source_ids, self.tokenizer.encode_target(targets), progress)

    def run_ids(
        self,
        sources: Sequence[Sequence[int]],
        targets: Sequence[Sequence[int]],
        progress: Callable[[int], object] | None = None,
    ) -> list[ForcedOutput]:
        """Forced decoding of every (source ids, target ids) pair, in input order.

        Args:
            sources: source piece ids, without BOS/EOS; an empty source is scored as one
                padding position that attention cannot see (the model's P(T | nothing)).
            targets: target piece ids without EOS (it is appended here).
            progress: called with the number of pairs each finished batch held.

        Returns:
            One `ForcedOutput` per pair, its log-probs and attention cut to the real pieces.
        """
        if len(sources) != len(targets):
            raise ValueError(
                f"`sources` and `targets` must have equal lengths, got {len(sources)} "
                f"and {len(targets)}"
            )
        results: list[ForcedOutput | None] = [None] * len(sources)
        # Sorted by length: little padding in a batch, and fewer steps for the short ones.
        order = sorted(range(len(sources)), key=lambda i: (len(targets[i]), len(sources[i])))
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            source = _pad([sources[i] for i in batch], minimum=1)
            target = _pad([[*targets[i], EOS_ID] for i in batch], minimum=1)
            log_probs, attention = (x.numpy() for x in self._forced(source, target))
            for row, i in enumerate(batch):
                n_target, n_source = len(targets[i]) + 1, len(sources[i])
                results[i] = ForcedOutput(
                    log_probs[row, :n_target], attention[row, :n_target, :n_source]
                )
            if progress is not None:
                progress(len(batch))
        return results


def _pad(rows: Sequence[Sequence[int]], minimum: int) -> tf.Tensor:
    """Id lists -> a [len(rows), max(len, minimum)] int32 tensor padded with PAD."""
    width = max(minimum, max(len(r) for r in rows))
    array = np.full((len(rows), width), PAD_ID, np.int32)
    for row, ids in enumerate(rows):
        array[row, : len(ids)] = ids
    return tf.constant(array)


def truncate_sources(
    ids: list[list[int]], texts: Sequence[str], max_length: int
) -> list[list[int]]:
    """Cuts sources to the model's limit, warning on stderr (as `nmt translate` does)."""
    for i, row in enumerate(ids):
        if len(row) > max_length:
            print(
                f'nmt: warning: an input of {len(row)} pieces ("{texts[i][:40]}...") '
                f"is truncated to its first {max_length} pieces",
                file=sys.stderr,
            )
            ids[i] = row[:max_length]
    return ids


def format_score(score: PairScore, per_piece: bool = False) -> str:
    """'SUM<TAB>MEAN', plus '<TAB>' and the space-separated per-piece log-probs (EOS last)."""
    line = f"{score.total:.4f}\t{score.mean:.4f}"
    if per_piece:
        line += "\t" + " ".join(f"{p:.4f}" for p in score.log_probs)
    return line
