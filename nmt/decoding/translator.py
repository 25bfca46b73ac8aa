"""Translate text with a trained model: tokenize, batch by length, search, detokenize.

`Translator.translate` returns exactly one output per input, in input order. Empty or
whitespace-only inputs give empty outputs without touching the model; inputs longer than the
model's source limit are truncated with a warning (never dropped).

Several models (checkpoints of one run, or runs sharing config and tokenizer) decode as an
ensemble: every step averages their next-token probabilities, log(1/M sum_m p_m(y)), as in
Sutskever et al. (2014) and OpenNMT-py's ensemble decoding.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from nmt.config import DecodingConfig
from nmt.constants import BOS_ID, PAD_ID
from nmt.data.tokenizer import Tokenizer
from nmt.decoding.beam_search import beam_search
from nmt.decoding.search import SearchResult, greedy_search, tile_beam
from nmt.decoding.shortlist import Shortlist
from nmt.errors import NmtError
from nmt.model.seq2seq import Seq2Seq
from nmt.run_directory import load_trained


def _one_line(text: str) -> str:
    """Byte-fallback pieces can decode to line breaks; one input must stay one output line."""
    return text.replace("\r", " ").replace("\n", " ")


_CACHED_SEARCHES = 16  # traced searches kept, one per distinct settings tuple
# The first call with given settings runs the search eagerly when it is one batch of at most this
# many sentences: tracing the graph costs more than it saves on one small batch (a one-sentence
# `nmt translate`); later calls trace it.
_EAGER_FIRST_CALL_SENTENCES = 8


class Hypothesis(NamedTuple):
    """A translation with the GNMT score the search ranks by (`SearchResult.scores`) and its
    plain log-probability log P(Y|X), EOS included."""

    text: str
    score: float
    log_prob: float = 0.0


def output_limits(source_lengths: tf.Tensor, ratio: float, offset: int) -> tf.Tensor:
    """Most output tokens per sentence, EOS included: floor(ratio * source length) + offset,
    at least 1 (`DecodingConfig.max_length_ratio` and `max_length_offset`).

    Args:
        source_lengths: [B] float32 source pieces per sentence.

    Returns:
        [B] int32.
    """
    limits = tf.cast(source_lengths * ratio, tf.int32)
    return tf.maximum(limits + offset, 1)


class TranslatedBatch(NamedTuple):
    """Source lines and, for each, its n-best translations (best first)."""

    sources: list[str]
    nbest: list[list[Hypothesis]]


# NMT_DEBUG_BATCHES=1 reports every batch `translate_batches` decodes on stderr (how many lines
# arrived together on a pipe), for tests and for tuning a pipeline.
_DEBUG_BATCHES = os.environ.get("NMT_DEBUG_BATCHES", "") not in ("", "0")


def ensemble_step(models: Sequence[Seq2Seq], tokens, states, memories, weights):
    """One decoding step of every model: tokens [N] -> (log-probs [N, V], states, attention
    [N, T_s]); an ensemble's are the log of the mean probability and the mean attention.
    `weights` are each model's `step_weights()`; search and forced decoding share this step."""
    outs = [
        model.step(tokens, state, memory, w)
        for model, state, memory, w in zip(models, states, memories, weights)
    ]
    log_probs = [tf.nn.log_softmax(tf.cast(out.logits, tf.float32)) for out in outs]
    attention = [tf.cast(out.attention, tf.float32) for out in outs]
    if len(outs) > 1:
        log_probs = [tf.reduce_logsumexp(tf.stack(log_probs), 0) - np.log(len(outs))]
        attention = [tf.add_n(attention) / len(outs)]
    return log_probs[0], tuple(out.state for out in outs), attention[0]


def _search_all(
    batches: list, search_batch: Callable, concurrent: int, first_alone: bool = True
) -> Iterator:
    """search_batch(batch) for every batch, in order, `concurrent` at a time.

    One search is a chain of small dependent ops that keeps about one core busy (52-58% of two
    cores idle in a profile of the recipe model, BENCHMARKS.md sitting K), so batches searched
    side by side fill the others. With `first_alone` the first batch runs by itself: it traces
    the graph. Only `concurrent` batches are ever queued, so a caller that stops reading (Ctrl-C)
    leaves the threads nothing more to finish.
    """
    if concurrent == 1 or len(batches) < 2:
        yield from map(search_batch, batches)
        return
    rest = iter(batches)
    if first_alone:
        yield search_batch(next(rest))
    with ThreadPoolExecutor(concurrent, "nmt-search") as pool:
        running = collections.deque(
            pool.submit(search_batch, batch) for batch in itertools.islice(rest, concurrent)
        )
        try:
            while running:
                done = running.popleft().result()
                for batch in itertools.islice(rest, 1):
                    running.append(pool.submit(search_batch, batch))
                yield done
        finally:
            for future in running:
                future.cancel()


class Translator:
    """A model (or an ensemble of models), its tokenizer and decoding settings.

    Args:
        model: a built `Seq2Seq`, or a sequence of them to decode as an ensemble.
        tokenizer: the tokenizer the model was trained with.
        decoding: default search settings (each call may override them).
        max_source_length: longer inputs are truncated to this many pieces.
        shortlist: search each batch over its lexical shortlist's candidates only
            (`nmt.decoding.shortlist`), not the whole target vocabulary.
    """

    def __init__(
        self,
        model: Seq2Seq,
        tokenizer: Tokenizer,
        decoding: DecodingConfig | None = None,
        max_source_length: int = 250,
        shortlist: Shortlist | None = None,
    ):
        models = list(model) if isinstance(model, Sequence) else [model]
        for one in models:
            if tokenizer.target_vocab_size != one.target_vocab_size:
                raise NmtError(
                    f"the tokenizer's target vocabulary ({tokenizer.target_vocab_size} pieces) "
                    f"does not match the model's ({one.target_vocab_size}); use the run's own "
                    "tokenizer"
                )
        self.models = models
        self.model = models[0]
        self.tokenizer = tokenizer
        self.decoding = decoding or DecodingConfig()
        self.max_source_length = max_source_length
        self.shortlist = shortlist
        self._search_functions: collections.OrderedDict = collections.OrderedDict()
        self._searched_eagerly: set = set()  # settings whose first call ran without a graph
        self.truncated = 0  # inputs cut to max_source_length so far

    @classmethod
    def load(
        cls,
        run_dir: str | Path,
        checkpoint: str | Sequence[str] | None = None,
        compute_dtype: str | None = None,
        shortlist: str | Path | None = None,
    ) -> Translator:
        """Loads the best checkpoint of a run directory (or the latest, or given ones).

        Args:
            run_dir: the run whose config and tokenizer are used.
            checkpoint: a checkpoint prefix, or several to decode as an ensemble (they may
                come from other runs with the same model config and tokenizer).
            compute_dtype: "float32", "bfloat16" or "auto" instead of the run's
                `model.compute_dtype`.
            shortlist: a file `nmt shortlist` wrote for this run, to search over its candidates.

        Raises:
            NmtError: not a run directory, no checkpoint, or a tokenizer/model mismatch.
        """
        run = load_trained(run_dir, checkpoint, compute_dtype)
        return cls(
            run.models,
            run.tokenizer,
            run.config.decoding,
            max_source_length=run.config.data.max_source_length,
            shortlist=None
            if shortlist is None
            else Shortlist.load(shortlist, run.tokenizer.source_vocab_size),
        )

    def _search_function(self, settings: DecodingConfig, sentences: int | None = None):
        """The traced search for these settings; with `sentences` (the call's whole input, one
        batch) the untraced search on a first call that small (see _EAGER_FIRST_CALL_SENTENCES)."""
        # Batches searched side by side share one graph.
        key = dataclasses.astuple(dataclasses.replace(settings, concurrent_batches=1))
        small = sentences is not None and 0 < sentences <= _EAGER_FIRST_CALL_SENTENCES
        if small and key not in self._search_functions and key not in self._searched_eagerly:
            self._searched_eagerly.add(key)
            return lambda source: self.search(source, settings)
        if key in self._search_functions:
            self._search_functions.move_to_end(key)
        else:
            # The search is explicit tf.while_loops, so AutoGraph has nothing to convert; skipping
            # it cuts the first call (a one-sentence `nmt translate`) from 2.2 s to 0.8 s.
            self._search_functions[key] = tf.function(
                lambda source: self.search(source, settings),
                input_signature=[tf.TensorSpec([None, None], tf.int32)],
                autograph=False,
            )
            # Each settings tuple holds a traced graph: a server whose clients vary the
            # penalties must not grow without bound.
            while len(self._search_functions) > _CACHED_SEARCHES:
                self._search_functions.popitem(last=False)
        return self._search_functions[key]

    def search(self, source: tf.Tensor, settings: DecodingConfig) -> SearchResult:
        """source [B, T_s] piece ids, PAD-padded -> SearchResult; traceable into a graph (the
        SavedModel export calls it too)."""
        memories, states = zip(*(model.encode(source) for model in self.models))
        lengths = tf.reduce_sum(tf.cast(tf.not_equal(source, PAD_ID), tf.float32), axis=1)
        max_lengths = output_limits(lengths, settings.max_length_ratio, settings.max_length_offset)
        start = tf.fill(tf.shape(source)[:1], BOS_ID)
        k = settings.beam_size
        if k > 1:
            memories = tile_beam(memories, k)
        # Cast and concatenated once, outside the search loop.
        weights = [model.step_weights() for model in self.models]
        candidates = None
        if self.shortlist is not None:
            # The search sees candidate indices; the models read and the caller gets piece ids.
            candidates = self.shortlist.candidates(source)
            weights = [
                w._replace(
                    output_kernel=tf.gather(w.output_kernel, candidates, axis=1),
                    output_bias=tf.gather(w.output_bias, candidates),
                )
                for w in weights
            ]

        def step_fn(tokens, states, memories):
            if candidates is not None:
                tokens = tf.gather(candidates, tokens)
            return ensemble_step(self.models, tokens, states, memories, weights)

        state = tuple(states)
        memory = memories[0]
        penalties = {"alpha": settings.length_penalty, "beta": settings.coverage_penalty}
        if settings.coverage_penalty > 0:
            penalties["source_mask"] = memory.mask[::k]
        if k == 1:
            found = greedy_search(step_fn, state, start, max_lengths, context=memories, **penalties)
        else:
            found = beam_search(
                step_fn,
                state,
                start,
                max_lengths,
                beam_size=k,
                n_best=settings.n_best,
                stopping=settings.stopping,
                context=memories,
                live_beam=settings.live_beam,
                **penalties,
            )
        if candidates is not None:
            found = found._replace(tokens=tf.gather(candidates, found.tokens))
        return found

    def _encode(self, sentences: Sequence[str]) -> list[list[int]]:
        encoded = self.tokenizer.encode_source(sentences)
        for i, ids in enumerate(encoded):
            if len(ids) > self.max_source_length:
                self.truncated += 1
                print(
                    f'nmt: warning: an input of {len(ids)} pieces ("{sentences[i][:40]}...") '
                    f"is truncated to its first {self.max_source_length} pieces",
                    file=sys.stderr,
                )
                encoded[i] = ids[: self.max_source_length]
        return encoded

    def translate_nbest(
        self,
        sentences: Sequence[str],
        progress: Callable[[int], object] | None = None,
        **settings,
    ) -> list[list[Hypothesis]]:
        """The n best translations of every sentence, best first, in input order.

        Args:
            sentences: source texts.
            progress: called with the number of sentences each finished search batch held
                (empty inputs count at the start), e.g. a progress bar's `update`.
            **settings: `DecodingConfig` fields overriding the defaults for this call.
        """
        settings = dataclasses.replace(self.decoding, **settings)
        results: list[list[Hypothesis]] = [
            [Hypothesis("", 0.0)] * settings.n_best for _ in sentences
        ]
        encoded = self._encode(sentences)
        # Sorting by length puts similar lengths in one batch: little padding, fewer steps.
        order = sorted((i for i, ids in enumerate(encoded) if ids), key=lambda i: len(encoded[i]))
        one_batch = len(order) if len(order) <= settings.batch_size else None
        search = self._search_function(settings, sentences=one_batch)
        if progress is not None and len(order) < len(sentences):
            progress(len(sentences) - len(order))
        batches = [
            order[start : start + settings.batch_size]
            for start in range(0, len(order), settings.batch_size)
        ]

        def search_batch(batch: list[int]) -> tuple[list[int], list[np.ndarray]]:
            width = max(len(encoded[i]) for i in batch)
            source = np.full((len(batch), width), PAD_ID, np.int32)
            for row, i in enumerate(batch):
                source[row, : len(encoded[i])] = encoded[i]
            return batch, [x.numpy() for x in search(tf.constant(source))]

        traced = getattr(search, "experimental_get_tracing_count", lambda: 0)() > 0
        searched = _search_all(
            batches, search_batch, settings.concurrent_batches, first_alone=not traced
        )
        for batch, (tokens, lengths, scores, log_probs) in searched:
            for row, i in enumerate(batch):
                texts = self.tokenizer.decode_target(
                    [tokens[row, n, : lengths[row, n]] for n in range(settings.n_best)]
                )
                results[i] = [
                    Hypothesis(_one_line(t), float(s), float(p))
                    for t, s, p in zip(texts, scores[row], log_probs[row], strict=True)
                ]
            if progress is not None:
                progress(len(batch))
        return results

    def translate(
        self,
        sentences: Sequence[str],
        progress: Callable[[int], object] | None = None,
        **settings,
    ) -> list[str]:
        """One translation per sentence, in input order (empty in, empty out)."""
        settings["n_best"] = 1
        return [nbest[0].text for nbest in self.translate_nbest(sentences, progress, **settings)]

    def translate_stream(
        self, lines: Iterable[str], chunk_size: int = 1024, **settings
    ) -> Iterator[list[Hypothesis]]:
        """Translates a stream chunk by chunk (bounded memory), yielding n-best lists in order."""
        lines = iter(lines)
        while chunk := list(itertools.islice(lines, chunk_size)):
            yield from self.translate_nbest(chunk, **settings)

    def translate_batches(
        self,
        batches: Iterable[Sequence[str]],
        progress: Callable[[int], object] | None = None,
        **settings,
    ) -> Iterator[TranslatedBatch]:
        """Translates batches as they come, each one as soon as it is there.

        Unlike `translate_stream`, which waits for `chunk_size` lines, this lets the caller
        decide what a batch is: e.g. every line that has arrived on a pipe
        (`nmt.data.line_batches.available_batches`), so a writer waiting for one line's
        translation gets it while a piped file is still decoded in large batches.

        Args:
            batches: lists of source lines.
            progress: see `translate_nbest`.
            **settings: `DecodingConfig` fields overriding the defaults.

        Yields:
            Each batch's sources with their n-best lists, in order.
        """
        for batch in batches:
            if _DEBUG_BATCHES:
                print(f"nmt: translating a batch of {len(batch)} lines", file=sys.stderr)
            yield TranslatedBatch(list(batch), self.translate_nbest(batch, progress, **settings))
