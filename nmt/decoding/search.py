"""Greedy and batched beam search over any step function; they know nothing of the model.

A step function maps (tokens [N], state, context) to (log_probs [N, V], state, attention
[N, T_s] or None), where N = B for greedy and N = B * K for beam search; `state` is any nest of
tensors whose leading dimension is N, and `context` one that stays the same for the whole search
(the encoder memory). Both searches drop the rows of finished sentences from them as they go.
Both searches are `tf.while_loop`s, so they can run inside one `tf.function` (the Translator
compiles them).

Beam hypotheses are ranked by the GNMT score (Wu et al., 2016, eq. 14), the coverage term
only once a hypothesis ends:
    s(Y, X) = log P(Y|X) / lp(Y) + cp(X; Y),
    lp(Y) = ((5 + |Y|) / 6) ** alpha,
    cp(X; Y) = beta * sum_i log(min(sum_j p_ij, 1)),
where |Y| counts the end-of-sentence token and p_ij is the attention of target j on source i.

Shapes: B batch, K beam, V vocabulary, T output time, T_s source time, N n-best.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import tensorflow as tf

from nmt.constants import EOS_ID, PAD_ID

StepFn = Callable[[tf.Tensor, Any, Any], tuple[tf.Tensor, Any, Any]]
_NEG_INF = -1e9  # finite, so that -inf - -inf never makes a NaN


class SearchResult(NamedTuple):
    """Hypotheses, best first. Tokens exclude EOS and are PAD after the end."""

    tokens: tf.Tensor  # [B, N, T] int32
    lengths: tf.Tensor  # [B, N] int32, without EOS
    scores: tf.Tensor  # [B, N] float32 (search score: log-prob for greedy, GNMT score for beam)


class _Beams(NamedTuple):
    """Beam search loop state; the leading dimensions are [B, K] or [B * K]."""

    tokens: tf.Tensor  # [B * K] last tokens, the next step's input
    state: Any  # the step function's state, [B * K, ...]
    cum_log_probs: tf.Tensor  # [B, K]
    lengths: tf.Tensor  # [B, K] tokens so far, EOS included
    finished: tf.Tensor  # [B, K] bool
    coverage: tf.Tensor  # [B, K, T_s] summed attention ([B, K, 1] without coverage penalty)
    history: tf.Tensor  # [B, K, T]
    kept_scores: tf.Tensor  # [B, N] the n-best pool of ended hypotheses
    kept_history: tf.Tensor  # [B, N, T]


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


def _batch_free_shape(x) -> tf.TensorShape:
    """x's shape with an unknown leading (batch) dimension, for while-loop invariants."""
    shape = tf.convert_to_tensor(x).shape
    return shape if shape.rank == 0 else tf.TensorShape([None]).concatenate(shape[1:])


def _finalize(history: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """history [..., T] with EOS -> tokens with PAD from EOS on, lengths without EOS."""
    is_eos = tf.equal(history, EOS_ID)
    after_end = tf.cumsum(tf.cast(is_eos, tf.int32), axis=-1) > 0
    tokens = tf.where(after_end, PAD_ID, history)
    lengths = tf.reduce_sum(tf.cast(tf.logical_not(after_end), tf.int32), axis=-1)
    return tokens, lengths


def _eos_only(log_probs: tf.Tensor, eos_cost: tf.Tensor) -> tf.Tensor:
    """A row where only EOS is allowed, at `eos_cost` [...]: [..., V]."""
    vocab = tf.shape(log_probs)[-1]
    one_hot = tf.one_hot(EOS_ID, vocab, on_value=True, off_value=False)
    return tf.where(one_hot, eos_cost[..., None], _NEG_INF)


def greedy_search(
    step_fn: StepFn,
    initial_state: Any,
    start_tokens: tf.Tensor,
    max_lengths: tf.Tensor,
    context: Any = (),
) -> SearchResult:
    """Picks the most probable token at every step; a sentence leaves the batch at its EOS.

    Args:
        step_fn: see the module docstring, with N = B.
        initial_state: nest of [B, ...] tensors.
        start_tokens: [B] first input tokens (BOS).
        max_lengths: [B] int32, most output tokens per sentence including EOS.
        context: nest of [B, ...] tensors passed to every step.

    Returns:
        SearchResult with N = 1.
    """
    batch = tf.shape(start_tokens)[0]
    max_steps = tf.reduce_max(max_lengths)

    def body(t, index, limits, tokens, state, context, score, out_scores, out_history):
        log_probs, state, _ = step_fn(tokens, state, context)
        force_eos = t >= limits - 1
        log_probs = tf.where(
            force_eos[:, None], _eos_only(log_probs, log_probs[:, EOS_ID]), log_probs
        )
        tokens = tf.argmax(log_probs, axis=-1, output_type=tf.int32)
        score += tf.gather(log_probs, tokens, batch_dims=1)
        out_scores = tf.tensor_scatter_nd_update(out_scores, index[:, None], score)
        at = tf.stack([index, tf.fill(tf.shape(index), t)], axis=1)
        out_history = tf.tensor_scatter_nd_update(out_history, at, tokens)
        stay = tf.reshape(tf.where(tf.not_equal(tokens, EOS_ID)), [-1])

        def keep(nest):
            return tf.nest.map_structure(lambda x: tf.gather(x, stay), nest)

        context = _drop_rows(context, stay, tf.equal(tf.size(stay), tf.size(tokens)))
        index, limits, tokens, state, score = keep((index, limits, tokens, state, score))
        return t + 1, index, limits, tokens, state, context, score, out_scores, out_history

    def not_done(t, index, *_):
        return tf.logical_and(t < max_steps, tf.size(index) > 0)

    loop_vars = (tf.range(batch), max_lengths, start_tokens, initial_state, context)
    loop_vars += (tf.zeros([batch], tf.float32),)
    out_scores = tf.zeros([batch], tf.float32)
    out_history = tf.fill([batch, max_steps], PAD_ID)
    steps, *_, out_scores, out_history = tf.while_loop(
        not_done,
        body,
        (tf.constant(0), *loop_vars, out_scores, out_history),
        shape_invariants=(
            tf.TensorShape([]),
            *tf.nest.map_structure(_batch_free_shape, loop_vars),
            out_scores.shape,
            out_history.shape,
        ),
    )
    tokens, lengths = _finalize(out_history[:, :steps])
    return SearchResult(tokens[:, None, :], lengths[:, None], out_scores[:, None])


def beam_search(
    step_fn: StepFn,
    initial_state: Any,
    start_tokens: tf.Tensor,
    max_lengths: tf.Tensor,
    beam_size: int,
    alpha: float = 0.0,
    beta: float = 0.0,
    source_mask: tf.Tensor | None = None,
    n_best: int = 1,
    stopping: str = "exact",
    context: Any = (),
) -> SearchResult:
    """Batched beam search with the GNMT length and coverage penalties.

    Finished hypotheses keep their beam slot and compete with live ones at every step (so
    K = 1 is exactly greedy search); each hypothesis is also copied, as it ends, into an n-best
    pool that keeps it even after live beams push it out of the beam. A sentence is done when
    no live beam can beat its pool any more (or at the length limit); its rows then leave the
    batch, so the steps after it cost only what the sentences still searching need.

    Args:
        step_fn: see the module docstring, with N = B * K.
        initial_state: nest of [B, ...] tensors (tiled here).
        start_tokens: [B] first input tokens (BOS).
        max_lengths: [B] int32, most output tokens per sentence including EOS.
        beam_size: K.
        alpha: length penalty weight (0: plain log-probability).
        beta: coverage penalty weight (0: off); needs `source_mask` and step attention.
        source_mask: [B, T_s] bool, True at real source tokens.
        n_best: how many hypotheses to return per sentence (<= K).
        stopping: when a sentence is done. "exact": once no live beam could beat its n-th
            kept hypothesis even at the length limit (the result is what an unbounded search
            returns). "heuristic": once no live beam beats it with its score now, as
            OpenNMT-py and Hugging Face do by default; with alpha > 0 a longer hypothesis could
            still have overtaken, but the loop stops several steps earlier.
        context: nest of [B * K, ...] tensors passed to every step (tile them with
            `tile_beam`).

    Returns:
        SearchResult with N = n_best, best first.
    """
    if not 1 <= n_best <= beam_size:
        raise ValueError(f"`n_best` must be in [1, beam_size={beam_size}], got {n_best}")
    if stopping not in ("exact", "heuristic"):
        raise ValueError(f"`stopping` must be 'exact' or 'heuristic', got {stopping!r}")
    if beta > 0 and source_mask is None:
        raise ValueError("a coverage penalty (`beta` > 0) needs `source_mask`")
    k = beam_size
    batch = tf.shape(start_tokens)[0]
    max_steps = tf.reduce_max(max_lengths)
    use_coverage = beta > 0
    # Only beam 0 is alive at the start, so the first step does not pick K copies of one token.
    cum_log_probs = tf.tile(tf.concat([[0.0], tf.fill([k - 1], _NEG_INF)], 0)[None], [batch, 1])
    coverage_shape = tf.shape(source_mask) if use_coverage else [batch, 1]
    coverage = tf.zeros(tf.concat([[batch, k], coverage_shape[1:]], 0))
    # Per-sentence constants that shrink with the batch; the mask is a dummy without coverage.
    sentence = _Sentences(
        index=tf.range(batch),
        limit=max_lengths[:, None],
        mask=source_mask[:, None, :] if use_coverage else tf.zeros([batch, 1, 1], tf.bool),
    )

    def step(t, beams: _Beams, sentence: _Sentences, context):
        cum_log_probs, lengths, finished = beams.cum_log_probs, beams.lengths, beams.finished
        coverage, kept_scores, kept_history = beams.coverage, beams.kept_scores, beams.kept_history
        active = tf.shape(cum_log_probs)[0]
        log_probs, state, attention = step_fn(beams.tokens, beams.state, context)
        # Only a beam's K best tokens can enter the global top K (its other tokens rank below
        # them), plus EOS, the one token whose rank the coverage penalty changes. Ranking these
        # K + 1 candidates per beam instead of all V tokens is exact and saves ~10 passes
        # over [B * K, V] per step; `top_k_rows` finds the K best cheaply.
        top_log_probs, top_tokens = top_k_rows(log_probs, k)
        top_log_probs = tf.where(tf.equal(top_tokens, EOS_ID), _NEG_INF, top_log_probs)
        eos_log_probs = tf.reshape(log_probs[:, EOS_ID], [active, k])
        options = tf.shape(top_tokens)[-1] + 1  # K + 1 candidates per beam, EOS last
        cand_tokens = tf.concat(
            [tf.reshape(top_tokens, [active, k, -1]), tf.fill([active, k, 1], EOS_ID)], -1
        )
        cand_log_probs = tf.concat(
            [tf.reshape(top_log_probs, [active, k, -1]), eos_log_probs[..., None]], -1
        )
        # An ended hypothesis can only "emit" EOS again, at no cost (its score stays put); one
        # at its length limit must emit EOS.
        force_eos = tf.logical_and(t >= sentence.limit - 1, tf.logical_not(finished))
        only_eos = tf.logical_or(finished, force_eos)[..., None]  # [B, K, 1]
        eos_slot = tf.equal(tf.range(options), options - 1)  # [K + 1]
        cand_log_probs = tf.where(
            tf.logical_and(only_eos, tf.logical_not(eos_slot)), _NEG_INF, cand_log_probs
        )
        cand_log_probs = tf.where(
            tf.logical_and(finished[..., None], eos_slot), 0.0, cand_log_probs
        )
        candidates = cum_log_probs[..., None] + cand_log_probs  # [B, K, K + 1]
        new_lengths = lengths + tf.cast(tf.logical_not(finished), tf.int32)
        ranking = candidates / length_penalty(new_lengths, alpha)[..., None]
        if use_coverage:
            attention = tf.reshape(attention, tf.shape(coverage))
            coverage = coverage + tf.where(finished[..., None], 0.0, attention)
            # Only complete hypotheses (those ending with EOS) pay the coverage penalty: on
            # partial ones it mostly measures how far they have got, not what they missed.
            penalty = coverage_penalty(coverage, sentence.mask, beta)[..., None]
            ranking += tf.where(eos_slot, penalty, 0.0)
        scores, flat = tf.math.top_k(tf.reshape(ranking, [active, -1]), k=k)  # [B, K]
        parents = flat // options
        next_tokens = tf.gather(tf.reshape(cand_tokens, [active, -1]), flat, batch_dims=1)
        was_finished = tf.gather(finished, parents, batch_dims=1)
        finished = tf.logical_or(was_finished, tf.equal(next_tokens, EOS_ID))
        history = tf.gather(beams.history, parents, batch_dims=1)  # [B, K, T]
        history = tf.concat([history, next_tokens[..., None]], axis=-1)
        # Hypotheses that end now join the n-best pool [B, N], so a finished hypothesis
        # that later loses its beam slot to live ones is never lost.
        ended_now = tf.logical_and(finished, tf.logical_not(was_finished))
        pool_scores = tf.concat([kept_scores, tf.where(ended_now, scores, _NEG_INF)], axis=1)
        pool_history = tf.concat([tf.pad(kept_history, [[0, 0], [0, 0], [0, 1]]), history], 1)
        kept_scores, picked = tf.math.top_k(pool_scores, k=n_best)  # ties keep the older one
        kept_history = tf.gather(pool_history, picked, batch_dims=1)
        beams = _Beams(
            tokens=next_tokens,
            state=state,
            cum_log_probs=tf.gather(tf.reshape(candidates, [active, -1]), flat, batch_dims=1),
            lengths=tf.gather(new_lengths, parents, batch_dims=1),
            finished=finished,
            coverage=tf.gather(coverage, parents, batch_dims=1),
            history=history,
            kept_scores=kept_scores,
            kept_history=kept_history,
        )
        return beams, parents

    def is_done(beams: _Beams, sentence: _Sentences) -> tf.Tensor:
        """[B] bool: no live beam can beat the sentence's n-th kept hypothesis any more.

        A live score only falls as tokens are added, so cum_log_prob / lp(limit) bounds what it
        can reach (the coverage penalty is <= 0); the heuristic compares the scores as they are.
        Waiting instead for every beam to end would decode the weakest ones up to the limit.
        """
        horizon = sentence.limit if stopping == "exact" else beams.lengths
        live = beams.cum_log_probs / length_penalty(horizon, alpha)
        bound = tf.where(beams.finished, _NEG_INF, live)
        return beams.kept_scores[:, n_best - 1] >= tf.reduce_max(bound, axis=1)

    def body(t, beams: _Beams, sentence: _Sentences, context, out_scores, out_history):
        beams, parents = step(t, beams, sentence, context)
        # Every sentence's n-best pool is copied out at each step, so the kept rows need no
        # flush when they leave.
        width = tf.shape(out_history)[-1]
        padded = tf.pad(beams.kept_history, [[0, 0], [0, 0], [0, width - t - 1]])
        where = sentence.index[:, None]
        out_scores = tf.tensor_scatter_nd_update(out_scores, where, beams.kept_scores)
        out_history = tf.tensor_scatter_nd_update(out_history, where, padded)
        # Sentences that are done leave: their rows go from every [B, ...] and [B * K, ...]
        # tensor. `parents` reorders the state rows of the sentences that stay.
        stay = tf.reshape(tf.where(tf.logical_not(is_done(beams, sentence))), [-1])
        stay_parents = tf.cast(tf.gather(parents, stay), tf.int64)
        rows = tf.reshape(stay[:, None] * k + stay_parents, [-1])
        state = tf.nest.map_structure(lambda s: tf.gather(s, rows), beams.state)
        beams = tf.nest.map_structure(lambda x: tf.gather(x, stay), beams._replace(state=()))
        beams = beams._replace(tokens=tf.reshape(beams.tokens, [-1]), state=state)
        sentence = tf.nest.map_structure(lambda x: tf.gather(x, stay), sentence)
        everyone_stays = tf.equal(tf.size(stay), tf.shape(parents)[0])
        context = _drop_rows(context, _beam_rows(stay, k), everyone_stays)
        return t + 1, beams, sentence, context, out_scores, out_history

    def not_done(t, beams, sentence, context, out_scores, out_history):
        return tf.logical_and(t < max_steps, tf.size(sentence.index) > 0)

    initial = _Beams(
        tokens=tile_beam(start_tokens, k),
        state=tile_beam(initial_state, k),
        cum_log_probs=cum_log_probs,
        lengths=tf.zeros([batch, k], tf.int32),
        finished=tf.zeros([batch, k], tf.bool),
        coverage=coverage,
        history=tf.zeros([batch, k, 0], tf.int32),
        kept_scores=tf.fill([batch, n_best], _NEG_INF),
        kept_history=tf.zeros([batch, n_best, 0], tf.int32),
    )
    invariants = tf.nest.map_structure(_batch_free_shape, initial)._replace(
        history=tf.TensorShape([None, k, None]),  # the histories grow in time
        kept_history=tf.TensorShape([None, n_best, None]),
    )
    out_scores = tf.fill([batch, n_best], _NEG_INF)
    out_history = tf.zeros([batch, n_best, max_steps], tf.int32)
    steps, _, _, _, out_scores, out_history = tf.while_loop(
        not_done,
        body,
        (tf.constant(0), initial, sentence, context, out_scores, out_history),
        shape_invariants=(
            tf.TensorShape([]),
            invariants,
            tf.nest.map_structure(_batch_free_shape, sentence),
            tf.nest.map_structure(_batch_free_shape, context),
            out_scores.shape,
            out_history.shape,
        ),
    )
    tokens, lengths = _finalize(out_history[:, :, :steps])
    return SearchResult(tokens, lengths, out_scores)


class _Sentences(NamedTuple):
    """What beam search keeps per sentence still searching; leading dimension [B]."""

    index: tf.Tensor  # [B] int32 position in the input batch
    limit: tf.Tensor  # [B, 1] int32 most output tokens, EOS included
    mask: tf.Tensor  # [B, 1, T_s] bool real source tokens (for the coverage penalty)


def _beam_rows(sentences: tf.Tensor, k: int) -> tf.Tensor:
    """The [B' * K] rows of a [B * K, ...] tensor that hold the K beams of `sentences` [B']."""
    return tf.reshape(sentences[:, None] * k + tf.range(k, dtype=sentences.dtype), [-1])


def _drop_rows(context: Any, rows: tf.Tensor, everyone_stays: tf.Tensor) -> Any:
    """`context` cut to `rows` (those of the sentences still searching), copied only when some
    sentence left: it is constant, so unlike the state it needs no reordering by beam."""
    if not tf.nest.flatten(context):
        return context
    return tf.cond(
        everyone_stays,
        lambda: context,
        lambda: tf.nest.map_structure(lambda c: tf.gather(c, rows), context),
    )
