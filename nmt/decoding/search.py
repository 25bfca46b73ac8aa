"""Greedy search, and what it shares with beam search (`nmt.decoding.beam_search`).

Both searches know nothing of the model. A step function maps (tokens [N], state, context) to
(log_probs [N, V], state, attention [N, T_s] or None), where N = B for greedy and N = B * K for
beam search; `state` is any nest of tensors whose leading dimension is N, and `context` one that
stays the same for the whole search (the encoder memory). Both searches drop the rows of
finished sentences from them as they go. Both searches are `tf.while_loop`s, so they can run
inside one `tf.function` (the Translator compiles them).

Held here: `SearchResult`, the GNMT `length_penalty` and `coverage_penalty`, `top_k_rows`,
`tile_beam`, `greedy_search` and the loop helpers both searches use. Greedy search picks by
probability alone and only reports the GNMT score (see `nmt.decoding.beam_search`) of what it
returns.

Shapes: B batch, K beam, V vocabulary, T output time, T_s source time, N n-best.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import tensorflow as tf

from nmt.constants import EOS_ID, PAD_ID

StepFn = Callable[[tf.Tensor, Any, Any], tuple[tf.Tensor, Any, Any]]
NEG_INF = -1e9  # finite, so that -inf - -inf never makes a NaN


class SearchResult(NamedTuple):
    """Hypotheses, best first. Tokens exclude EOS and are PAD after the end.

    Greedy and beam search report the same two numbers: `scores`, the GNMT score beam search
    ranks by (log P / lp(Y) + cp(X; Y), see `nmt.decoding.beam_search`), and `log_probs`, the plain
    log P(Y|X) of the same hypothesis, EOS included.
    """

    tokens: tf.Tensor  # [B, N, T] int32
    lengths: tf.Tensor  # [B, N] int32, without EOS (0 where fewer than N hypotheses ended)
    scores: tf.Tensor  # [B, N] float32 GNMT score (-1e9 where fewer than N ended)
    log_probs: tf.Tensor  # [B, N] float32 log P(Y|X)


def length_penalty(lengths: tf.Tensor, alpha: float) -> tf.Tensor:
    """GNMT length penalty lp(Y) = ((5 + |Y|) / 6) ** alpha (Wu et al., 2016)."""
    return tf.pow((5.0 + tf.cast(lengths, tf.float32)) / 6.0, alpha)


def coverage_penalty(coverage: tf.Tensor, mask: tf.Tensor, beta: float) -> tf.Tensor:
    """GNMT coverage penalty beta * sum_i log(min(coverage_i, 1)) over real source positions.

    Args:
        coverage: [..., T_s] attention summed over the target steps so far.
        mask: [..., T_s] bool, True at real source tokens (padding is ignored).
    """
    logs = tf.math.log(tf.clip_by_value(coverage, 1e-10, 1.0))
    return beta * tf.reduce_sum(tf.where(mask, logs, 0.0), axis=-1)


def top_k_rows(x: tf.Tensor, k: int, block: int = 128) -> tuple[tf.Tensor, tf.Tensor]:
    """`tf.math.top_k(x, k)` for x [N, V] with k much smaller than V, several times faster on CPU.

    The k largest values lie in the k blocks of `block` columns with the largest maxima, so
    one pass takes every block's maximum and `top_k` then runs on k blocks only. Equal values
    may come back in another order than `tf.math.top_k` would give them.

    Returns:
        values [N, k'] and column indices [N, k'], k' = min(k, V), largest first.
    """
    rows, vocab = tf.shape(x)[0], tf.shape(x)[1]
    k = tf.minimum(k, vocab)
    block = _block_size(x.shape[-1], block)
    blocks = (vocab + block - 1) // block
    if x.shape[-1] is None or x.shape[-1] % block:
        x = tf.pad(x, [[0, 0], [0, blocks * block - vocab]], constant_values=x.dtype.min)
    grid = tf.reshape(x, [rows, blocks, block])  # [N, V / block, block]
    _, best_blocks = tf.math.top_k(tf.reduce_max(grid, axis=-1), k=tf.minimum(k, blocks))
    candidates = tf.reshape(tf.gather(grid, best_blocks, batch_dims=1), [rows, -1])
    values, flat = tf.math.top_k(candidates, k=k)  # [N, k]
    columns = tf.gather(best_blocks, flat // block, batch_dims=1) * block + flat % block
    return values, columns


def _block_size(vocab: int | None, preferred: int) -> int:
    """A block size near `preferred` that divides `vocab`, so no padded copy of [N, V] is made."""
    if vocab:
        for size in sorted(
            range(preferred // 2, 2 * preferred + 1), key=lambda s: abs(s - preferred)
        ):
            if vocab % size == 0:
                return size
    return preferred


def tile_beam(nest: Any, beam_size: int) -> Any:
    """Repeats every tensor of a nest K times along axis 0: [B, ...] -> [B * K, ...]."""
    return tf.nest.map_structure(lambda t: tf.repeat(t, beam_size, axis=0), nest)


def batch_free_shape(x) -> tf.TensorShape:
    """x's shape with an unknown leading (batch) dimension, for while-loop invariants."""
    shape = tf.convert_to_tensor(x).shape
    return shape if shape.rank == 0 else tf.TensorShape([None]).concatenate(shape[1:])


def finalize(history: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """history [..., T] with EOS -> tokens with PAD from EOS on, lengths without EOS.

    A row without EOS is an n-best slot no hypothesis filled (fewer than N ended): length 0.
    """
    is_eos = tf.equal(history, EOS_ID)
    after_end = tf.cumsum(tf.cast(is_eos, tf.int32), axis=-1) > 0
    after_end = tf.logical_or(after_end, tf.logical_not(tf.reduce_any(is_eos, -1, keepdims=True)))
    tokens = tf.where(after_end, PAD_ID, history)
    lengths = tf.reduce_sum(tf.cast(tf.logical_not(after_end), tf.int32), axis=-1)
    return tokens, lengths


def greedy_search(
    step_fn: StepFn,
    initial_state: Any,
    start_tokens: tf.Tensor,
    max_lengths: tf.Tensor,
    context: Any = (),
    alpha: float = 0.0,
    beta: float = 0.0,
    source_mask: tf.Tensor | None = None,
) -> SearchResult:
    """Picks the most probable token at every step; a sentence leaves the batch at its EOS.

    The penalties do not change which tokens are picked; they only make the reported score
    the GNMT score beam search would give the same hypothesis.

    Args:
        step_fn: see the module docstring, with N = B.
        initial_state: nest of [B, ...] tensors.
        start_tokens: [B] first input tokens (BOS).
        max_lengths: [B] int32, most output tokens per sentence including EOS.
        context: nest of [B, ...] tensors passed to every step.
        alpha: length penalty weight of the reported score.
        beta: coverage penalty weight of the reported score; needs `source_mask` and step
            attention.
        source_mask: [B, T_s] bool, True at real source tokens.

    Returns:
        SearchResult with N = 1.
    """
    if beta > 0 and source_mask is None:
        raise ValueError("a coverage penalty (`beta` > 0) needs `source_mask`")
    batch = tf.shape(start_tokens)[0]
    max_steps = tf.reduce_max(max_lengths)
    # (summed attention [B, T_s], source mask [B, T_s]) per sentence still searching.
    coverage = (tf.zeros(tf.shape(source_mask)), source_mask) if beta > 0 else ()

    def body(t, index, limits, tokens, state, context, coverage, log_prob, out):
        log_probs, state, attention = step_fn(tokens, state, context)
        # At its length limit a sentence must end: EOS replaces its pick, costing EOS's
        # log-probability. Done on the [B] picks: masking the [B, V] rows cost two passes
        # over them per step (BENCHMARKS.md, sitting K: 1.03-1.08x greedy, same output).
        best = tf.argmax(log_probs, axis=-1, output_type=tf.int32)
        tokens = tf.where(t >= limits - 1, EOS_ID, best)
        log_prob += tf.gather(log_probs, tokens, batch_dims=1)
        if beta > 0:
            coverage = (coverage[0] + attention, coverage[1])
        out = _record_greedy(out, t, index, tokens, log_prob, coverage, beta)
        stay = tf.reshape(tf.where(tf.not_equal(tokens, EOS_ID)), [-1])
        context = drop_rows(context, stay, tf.equal(tf.size(stay), tf.size(tokens)))
        kept = (index, limits, tokens, state, coverage, log_prob)
        kept = tf.nest.map_structure(lambda x: tf.gather(x, stay), kept)
        index, limits, tokens, state, coverage, log_prob = kept
        return t + 1, index, limits, tokens, state, context, coverage, log_prob, out

    def not_done(t, index, *_):
        return tf.logical_and(t < max_steps, tf.size(index) > 0)

    loop_vars = (tf.range(batch), max_lengths, start_tokens, initial_state, context, coverage)
    loop_vars += (tf.zeros([batch], tf.float32),)
    out = _GreedyOut(
        tf.zeros([batch], tf.float32),
        tf.zeros([batch], tf.float32),
        tf.fill([batch, max_steps], PAD_ID),
    )
    steps, *_, out = tf.while_loop(
        not_done,
        body,
        (tf.constant(0), *loop_vars, out),
        shape_invariants=(
            tf.TensorShape([]),
            *tf.nest.map_structure(batch_free_shape, loop_vars),
            tf.nest.map_structure(lambda x: x.shape, out),
        ),
    )
    tokens, lengths = finalize(out.history[:, :steps])
    # Every greedy output ends with EOS (forced at the limit), which |Y| counts.
    scores = out.log_probs / length_penalty(lengths + 1, alpha) + out.penalties
    return SearchResult(
        tokens[:, None, :], lengths[:, None], scores[:, None], out.log_probs[:, None]
    )


class _GreedyOut(NamedTuple):
    """Greedy search's output, written as sentences end; leading dimension the whole batch."""

    log_probs: tf.Tensor  # [B] log P(Y|X)
    penalties: tf.Tensor  # [B] coverage penalty (0 without one)
    history: tf.Tensor  # [B, T] tokens, EOS included


def _record_greedy(
    out: _GreedyOut,
    t: tf.Tensor,
    index: tf.Tensor,
    tokens: tf.Tensor,
    log_prob: tf.Tensor,
    coverage: tuple,
    beta: float,
) -> _GreedyOut:
    """Writes step t of the sentences still searching, at their `index` [B'], into `out`.

    Args:
        tokens: [B'] the tokens picked; log_prob [B'] the sentences' log P so far.
        coverage: (summed attention [B', T_s], source mask [B', T_s]), or () without beta.
    """
    at = tf.stack([index, tf.fill(tf.shape(index), t)], axis=1)
    where = index[:, None]
    penalties = out.penalties
    if beta > 0:
        penalties = tf.tensor_scatter_nd_update(penalties, where, coverage_penalty(*coverage, beta))
    return _GreedyOut(
        log_probs=tf.tensor_scatter_nd_update(out.log_probs, where, log_prob),
        penalties=penalties,
        history=tf.tensor_scatter_nd_update(out.history, at, tokens),
    )


def drop_rows(context: Any, rows: tf.Tensor, everyone_stays: tf.Tensor) -> Any:
    """`context` cut to `rows` (those of the sentences still searching), copied only when some
    sentence left: it is constant, so unlike the state it needs no reordering by beam."""
    if not tf.nest.flatten(context):
        return context
    return tf.cond(
        everyone_stays,
        lambda: context,
        lambda: tf.nest.map_structure(lambda c: tf.gather(c, rows), context),
    )
