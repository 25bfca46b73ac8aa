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
Both searches report this score and log P(Y|X) for what they return; greedy search picks by
probability alone and only scores its output this way. How many hypotheses beam search keeps
live once some have ended is `beam_search`'s `live_beam`.

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
    """Hypotheses, best first. Tokens exclude EOS and are PAD after the end.

    Greedy and beam search report the same two numbers: `scores`, the GNMT score beam search
    ranks by (log P / lp(Y) + cp(X; Y), see the module docstring), and `log_probs`, the plain
    log P(Y|X) of the same hypothesis, EOS included.
    """

    tokens: tf.Tensor  # [B, N, T] int32
    lengths: tf.Tensor  # [B, N] int32, without EOS (0 where fewer than N hypotheses ended)
    scores: tf.Tensor  # [B, N] float32 GNMT score (-1e9 where fewer than N ended)
    log_probs: tf.Tensor  # [B, N] float32 log P(Y|X)


class _Pool(NamedTuple):
    """Ended hypotheses, best first; the n-best pool of a sentence, or the search's output."""

    scores: tf.Tensor  # [B, N] GNMT score
    log_probs: tf.Tensor  # [B, N] log P(Y|X)
    history: tf.Tensor  # [B, N, T] tokens, EOS included


class _Beams(NamedTuple):
    """Beam search loop state; the leading dimensions are [B, K] or [B * K]."""

    tokens: tf.Tensor  # [B * K] last tokens, the next step's input
    state: Any  # the step function's state, [B * K, ...]
    cum_log_probs: tf.Tensor  # [B, K]
    lengths: tf.Tensor  # [B, K] tokens so far, EOS included
    finished: tf.Tensor  # [B, K] bool (always False with a full live beam)
    coverage: tf.Tensor  # [B, K, T_s] summed attention ([B, K, 1] without coverage penalty)
    history: tf.Tensor  # [B, K, T]
    kept: _Pool  # [B, N] the n-best pool of ended hypotheses


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
    """history [..., T] with EOS -> tokens with PAD from EOS on, lengths without EOS.

    A row without EOS is an n-best slot no hypothesis filled (fewer than N ended): length 0.
    """
    is_eos = tf.equal(history, EOS_ID)
    after_end = tf.cumsum(tf.cast(is_eos, tf.int32), axis=-1) > 0
    after_end = tf.logical_or(after_end, tf.logical_not(tf.reduce_any(is_eos, -1, keepdims=True)))
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
        force_eos = t >= limits - 1
        log_probs = tf.where(
            force_eos[:, None], _eos_only(log_probs, log_probs[:, EOS_ID]), log_probs
        )
        tokens = tf.argmax(log_probs, axis=-1, output_type=tf.int32)
        log_prob += tf.gather(log_probs, tokens, batch_dims=1)
        if beta > 0:
            coverage = (coverage[0] + attention, coverage[1])
        out = _record_greedy(out, t, index, tokens, log_prob, coverage, beta)
        stay = tf.reshape(tf.where(tf.not_equal(tokens, EOS_ID)), [-1])
        context = _drop_rows(context, stay, tf.equal(tf.size(stay), tf.size(tokens)))
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
            *tf.nest.map_structure(_batch_free_shape, loop_vars),
            tf.nest.map_structure(lambda x: x.shape, out),
        ),
    )
    tokens, lengths = _finalize(out.history[:, :steps])
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


class _Settings(NamedTuple):
    """What the beam search helpers need of `beam_search`'s arguments."""

    k: int  # beam size
    per_beam: int  # tokens each beam offers besides EOS, EOS among them masked
    alpha: float
    beta: float
    n_best: int
    stopping: str  # "exact" or "heuristic"
    full_live_beam: bool  # K hypotheses stay live; ended ones go only to the pool


class _Candidates(NamedTuple):
    """The extensions each beam may take, [B, K, C] with C = per_beam + 1 and EOS last."""

    tokens: tf.Tensor  # [B, K, C] int32
    log_probs: tf.Tensor  # [B, K, C] log P of the extended hypothesis
    ranking: tf.Tensor  # [B, K, C] its GNMT score (the coverage penalty only at EOS)
    lengths: tf.Tensor  # [B, K] lengths after this step, EOS included
    coverage: tf.Tensor  # [B, K, T_s] attention summed up to this step


LIVE_BEAMS = ("narrowing", "full")


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
    live_beam: str = "narrowing",
) -> SearchResult:
    """Batched beam search with the GNMT length and coverage penalties.

    Each hypothesis is copied, as it ends, into an n-best pool that keeps it whatever the beam
    does later. A sentence is done when no live beam can beat its pool any more (or at the
    length limit); its rows then leave the batch, so the steps after it cost only what the
    sentences still searching need.

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
        live_beam: "narrowing": an ended hypothesis keeps its beam slot and competes with the
            live ones at every step, so fewer stay live as hypotheses end (tf.contrib.seq2seq's
            behaviour; K = 1 is exactly greedy search). "full": the K best unfinished
            extensions stay live at every step and every one that ends goes to the pool
            (OpenNMT-py and fairseq keep K live the same way; they pool only the ended ones
            among the top 2K, a subset of these).

    Returns:
        SearchResult with N = n_best, best first.
    """
    if beta > 0 and source_mask is None:
        raise ValueError("a coverage penalty (`beta` > 0) needs `source_mask`")
    settings = _beam_settings(beam_size, alpha, beta, n_best, stopping, live_beam)
    select = _keep_k_live if settings.full_live_beam else _keep_ended_in_beam

    def body(t, beams: _Beams, sentence: _Sentences, context, out: _Pool):
        log_probs, state, attention = step_fn(beams.tokens, beams.state, context)
        candidates = _expand(settings, t, beams, sentence, log_probs, attention)
        beams, parents = select(settings, beams, candidates, state)
        out = _copy_out(out, beams.kept, sentence.index, t)
        done = _is_done(settings, t, beams, sentence.limit)
        beams, sentence, context = _leave(beams, sentence, context, parents, done, beam_size)
        return t + 1, beams, sentence, context, out

    max_steps = tf.reduce_max(max_lengths)

    def not_done(t, beams, sentence, context, out):
        return tf.logical_and(t < max_steps, tf.size(sentence.index) > 0)

    initial, sentence = _start(settings, initial_state, start_tokens, max_lengths, source_mask)
    batch = tf.shape(start_tokens)[0]
    out = _Pool(
        scores=tf.fill([batch, n_best], _NEG_INF),
        log_probs=tf.fill([batch, n_best], _NEG_INF),
        history=tf.zeros([batch, n_best, max_steps], tf.int32),
    )
    steps, _, _, _, out = tf.while_loop(
        not_done,
        body,
        (tf.constant(0), initial, sentence, context, out),
        shape_invariants=(
            tf.TensorShape([]),
            _beam_invariants(initial, beam_size, n_best),
            tf.nest.map_structure(_batch_free_shape, sentence),
            tf.nest.map_structure(_batch_free_shape, context),
            tf.nest.map_structure(lambda x: x.shape, out),
        ),
    )
    tokens, lengths = _finalize(out.history[:, :, :steps])
    return SearchResult(tokens, lengths, out.scores, out.log_probs)


def _beam_settings(
    beam_size: int, alpha: float, beta: float, n_best: int, stopping: str, live_beam: str
) -> _Settings:
    """Checks `beam_search`'s arguments and derives how many tokens each beam offers."""
    if not 1 <= n_best <= beam_size:
        raise ValueError(f"`n_best` must be in [1, beam_size={beam_size}], got {n_best}")
    if stopping not in ("exact", "heuristic"):
        raise ValueError(f"`stopping` must be 'exact' or 'heuristic', got {stopping!r}")
    if live_beam not in LIVE_BEAMS:
        raise ValueError(f"`live_beam` must be 'narrowing' or 'full', got {live_beam!r}")
    full = live_beam == "full"
    # A beam's K best tokens besides EOS are all it can add to the K best; one more is taken
    # when EOS may be among them and then not count (see `_candidate_tokens`).
    per_beam = beam_size + 1 if beta > 0 or full else beam_size
    return _Settings(beam_size, per_beam, alpha, beta, n_best, stopping, full)


def _start(
    settings: _Settings,
    initial_state: Any,
    start_tokens: tf.Tensor,
    max_lengths: tf.Tensor,
    source_mask: tf.Tensor | None,
) -> tuple[_Beams, _Sentences]:
    """The beams and per-sentence constants before the first step."""
    k, n_best = settings.k, settings.n_best
    batch = tf.shape(start_tokens)[0]
    use_coverage = settings.beta > 0
    # Only beam 0 is alive at the start, so the first step does not pick K copies of one token.
    cum_log_probs = tf.tile(tf.concat([[0.0], tf.fill([k - 1], _NEG_INF)], 0)[None], [batch, 1])
    coverage_shape = tf.shape(source_mask) if use_coverage else [batch, 1]
    beams = _Beams(
        tokens=tile_beam(start_tokens, k),
        state=tile_beam(initial_state, k),
        cum_log_probs=cum_log_probs,
        lengths=tf.zeros([batch, k], tf.int32),
        finished=tf.zeros([batch, k], tf.bool),
        coverage=tf.zeros(tf.concat([[batch, k], coverage_shape[1:]], 0)),
        history=tf.zeros([batch, k, 0], tf.int32),
        kept=_Pool(
            scores=tf.fill([batch, n_best], _NEG_INF),
            log_probs=tf.fill([batch, n_best], _NEG_INF),
            history=tf.zeros([batch, n_best, 0], tf.int32),
        ),
    )
    # Per-sentence constants that shrink with the batch; the mask is a dummy without coverage.
    sentence = _Sentences(
        index=tf.range(batch),
        limit=max_lengths[:, None],
        mask=source_mask[:, None, :] if use_coverage else tf.zeros([batch, 1, 1], tf.bool),
    )
    return beams, sentence


def _beam_invariants(beams: _Beams, k: int, n_best: int) -> _Beams:
    """While-loop shape invariants: the batch shrinks and the histories grow in time."""
    invariants = tf.nest.map_structure(_batch_free_shape, beams)
    return invariants._replace(
        history=tf.TensorShape([None, k, None]),
        kept=invariants.kept._replace(history=tf.TensorShape([None, n_best, None])),
    )


def _candidate_tokens(
    settings: _Settings, log_probs: tf.Tensor, finished: tf.Tensor, force_eos: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Each beam's best `per_beam` tokens with EOS masked, then EOS in a slot of its own.

    Only a beam's K best tokens besides EOS can enter the global top K (its other tokens
    rank below them), plus EOS, the one token whose rank the coverage penalty changes.
    Ranking these candidates instead of all V tokens is exact and saves ~10 passes over
    [B * K, V] per step; `top_k_rows` finds them cheaply. Without coverage penalty and with
    a narrowing beam, EOS ranks where its probability puts it, so the K best tokens with EOS
    moved to its slot suffice; otherwise EOS may be among the K best and not count, so
    `per_beam` is K + 1.

    Args:
        log_probs: [B * K, V] the step's log-probabilities.
        finished: [B, K] bool, hypotheses that have ended; they may only "emit" EOS again,
            at no cost, so their score stays put.
        force_eos: [B, K] bool, live hypotheses at their length limit, which must end.

    Returns:
        tokens [B, K, C] and step log-probabilities [B, K, C], C = per_beam + 1, EOS last;
        and eos_slot [C] bool, True at the last.
    """
    active = tf.shape(finished)[0]
    k = settings.k
    top_log_probs, top_tokens = top_k_rows(log_probs, settings.per_beam)
    top_log_probs = tf.where(tf.equal(top_tokens, EOS_ID), _NEG_INF, top_log_probs)
    eos_log_probs = tf.reshape(log_probs[:, EOS_ID], [active, k])
    options = tf.shape(top_tokens)[-1] + 1
    tokens = tf.concat(
        [tf.reshape(top_tokens, [active, k, -1]), tf.fill([active, k, 1], EOS_ID)], -1
    )
    step_log_probs = tf.concat(
        [tf.reshape(top_log_probs, [active, k, -1]), eos_log_probs[..., None]], -1
    )
    only_eos = tf.logical_or(finished, force_eos)[..., None]  # [B, K, 1]
    eos_slot = tf.equal(tf.range(options), options - 1)  # [C]
    step_log_probs = tf.where(
        tf.logical_and(only_eos, tf.logical_not(eos_slot)), _NEG_INF, step_log_probs
    )
    step_log_probs = tf.where(tf.logical_and(finished[..., None], eos_slot), 0.0, step_log_probs)
    return tokens, step_log_probs, eos_slot


def _expand(
    settings: _Settings,
    t: tf.Tensor,
    beams: _Beams,
    sentence: _Sentences,
    log_probs: tf.Tensor,
    attention: tf.Tensor | None,
) -> _Candidates:
    """Every beam's candidate extensions with their GNMT scores.

    Args:
        log_probs: [B * K, V] and attention [B * K, T_s], the step function's output.
    """
    finished = beams.finished
    force_eos = tf.logical_and(t >= sentence.limit - 1, tf.logical_not(finished))
    tokens, step_log_probs, eos_slot = _candidate_tokens(settings, log_probs, finished, force_eos)
    candidates = beams.cum_log_probs[..., None] + step_log_probs  # [B, K, C]
    lengths = beams.lengths + tf.cast(tf.logical_not(finished), tf.int32)
    ranking = candidates / length_penalty(lengths, settings.alpha)[..., None]
    coverage = beams.coverage
    if settings.beta > 0:
        attention = tf.reshape(attention, tf.shape(coverage))
        coverage = coverage + tf.where(finished[..., None], 0.0, attention)
        # Only complete hypotheses (those ending with EOS) pay the coverage penalty: on
        # partial ones it mostly measures how far they have got, not what they missed.
        penalty = coverage_penalty(coverage, sentence.mask, settings.beta)[..., None]
        ranking += tf.where(eos_slot, penalty, 0.0)
    return _Candidates(tokens, candidates, ranking, lengths, coverage)


def _keep_ended_in_beam(
    settings: _Settings, beams: _Beams, candidates: _Candidates, state: Any
) -> tuple[_Beams, tf.Tensor]:
    """The narrowing beam: the K best candidates, ended ones included, hold the K slots.

    Returns:
        the next beams and parents [B, K], the beam each comes from.
    """
    active = tf.shape(candidates.ranking)[0]
    options = tf.shape(candidates.ranking)[-1]
    scores, flat = tf.math.top_k(tf.reshape(candidates.ranking, [active, -1]), k=settings.k)
    parents = flat // options
    next_tokens = tf.gather(tf.reshape(candidates.tokens, [active, -1]), flat, batch_dims=1)
    was_finished = tf.gather(beams.finished, parents, batch_dims=1)
    finished = tf.logical_or(was_finished, tf.equal(next_tokens, EOS_ID))
    history = tf.gather(beams.history, parents, batch_dims=1)  # [B, K, T]
    history = tf.concat([history, next_tokens[..., None]], axis=-1)
    log_probs = tf.gather(tf.reshape(candidates.log_probs, [active, -1]), flat, batch_dims=1)
    # Hypotheses that end now join the n-best pool, so a finished hypothesis that later
    # loses its beam slot to live ones is never lost.
    ended_now = tf.logical_and(finished, tf.logical_not(was_finished))
    ended_scores = tf.where(ended_now, scores, _NEG_INF)
    beams = _Beams(
        tokens=next_tokens,
        state=state,
        cum_log_probs=log_probs,
        lengths=tf.gather(candidates.lengths, parents, batch_dims=1),
        finished=finished,
        coverage=tf.gather(candidates.coverage, parents, batch_dims=1),
        history=history,
        kept=_add_to_pool(beams.kept, ended_scores, log_probs, history, settings.n_best),
    )
    return beams, parents


def _keep_k_live(
    settings: _Settings, beams: _Beams, candidates: _Candidates, state: Any
) -> tuple[_Beams, tf.Tensor]:
    """The full beam: the K best unfinished candidates stay live, every ended one is pooled.

    Returns:
        the next beams and parents [B, K], the beam each comes from.
    """
    active = tf.shape(candidates.ranking)[0]
    options = tf.shape(candidates.ranking)[-1]
    eos_slot = tf.equal(tf.range(options), options - 1)  # [C]
    unfinished = tf.where(eos_slot, _NEG_INF, candidates.ranking)
    _, flat = tf.math.top_k(tf.reshape(unfinished, [active, -1]), k=settings.k)
    # Where K exceeds the real candidates (a tiny vocabulary) EOS slots fill the rest; they
    # must live on as dead hypotheses, not as ones that went on after their EOS.
    log_probs = tf.where(eos_slot, _NEG_INF, candidates.log_probs)
    parents = flat // options
    next_tokens = tf.gather(tf.reshape(candidates.tokens, [active, -1]), flat, batch_dims=1)
    history = tf.gather(beams.history, parents, batch_dims=1)  # [B, K, T]
    history = tf.concat([history, next_tokens[..., None]], axis=-1)
    ended_history = tf.concat([beams.history, tf.fill([active, settings.k, 1], EOS_ID)], -1)
    kept = _add_to_pool(
        beams.kept,
        candidates.ranking[..., -1],
        candidates.log_probs[..., -1],
        ended_history,
        settings.n_best,
    )
    beams = _Beams(
        tokens=next_tokens,
        state=state,
        cum_log_probs=tf.gather(tf.reshape(log_probs, [active, -1]), flat, batch_dims=1),
        lengths=tf.gather(candidates.lengths, parents, batch_dims=1),
        finished=beams.finished,  # all False: ended hypotheses leave the beam
        coverage=tf.gather(candidates.coverage, parents, batch_dims=1),
        history=history,
        kept=kept,
    )
    return beams, parents


def _add_to_pool(
    pool: _Pool, scores: tf.Tensor, log_probs: tf.Tensor, history: tf.Tensor, n_best: int
) -> _Pool:
    """The n best of a pool [B, N, T] and new hypotheses [B, K, T + 1] (score -inf: none).

    Ties keep the older hypothesis.
    """
    scores, picked = tf.math.top_k(tf.concat([pool.scores, scores], axis=1), k=n_best)
    log_probs = tf.concat([pool.log_probs, log_probs], axis=1)
    history = tf.concat([tf.pad(pool.history, [[0, 0], [0, 0], [0, 1]]), history], axis=1)
    return _Pool(
        scores=scores,
        log_probs=tf.gather(log_probs, picked, batch_dims=1),
        history=tf.gather(history, picked, batch_dims=1),
    )


def _copy_out(out: _Pool, kept: _Pool, index: tf.Tensor, t: tf.Tensor) -> _Pool:
    """Writes the pools of the sentences still searching into the output at their `index`
    [B']. Copying at every step means the rows of sentences that are done need no flush."""
    width = tf.shape(out.history)[-1]
    padded = tf.pad(kept.history, [[0, 0], [0, 0], [0, width - t - 1]])
    where = index[:, None]
    return _Pool(
        scores=tf.tensor_scatter_nd_update(out.scores, where, kept.scores),
        log_probs=tf.tensor_scatter_nd_update(out.log_probs, where, kept.log_probs),
        history=tf.tensor_scatter_nd_update(out.history, where, padded),
    )


def _is_done(settings: _Settings, t: tf.Tensor, beams: _Beams, limit: tf.Tensor) -> tf.Tensor:
    """[B] bool: no live beam can beat the sentence's n-th kept hypothesis any more.

    A live score only falls as tokens are added, so cum_log_prob / lp(limit) bounds what it
    can reach (the coverage penalty is <= 0); the heuristic compares the scores as they are.
    Waiting instead for every beam to end would decode the weakest ones up to the limit.
    At its limit `limit` [B, 1] every hypothesis of a sentence has ended.
    """
    horizon = limit if settings.stopping == "exact" else beams.lengths
    live = beams.cum_log_probs / length_penalty(horizon, settings.alpha)
    bound = tf.where(beams.finished, _NEG_INF, live)
    done = beams.kept.scores[:, settings.n_best - 1] >= tf.reduce_max(bound, axis=1)
    return tf.logical_or(done, t + 1 >= limit[:, 0])


def _leave(
    beams: _Beams,
    sentence: _Sentences,
    context: Any,
    parents: tf.Tensor,
    done: tf.Tensor,
    k: int,
) -> tuple[_Beams, _Sentences, Any]:
    """Drops the sentences that are `done` [B] from every [B, ...] and [B * K, ...] tensor.

    `parents` [B, K] reorders the state rows of the sentences that stay; `beams.tokens` goes
    from [B, K] to [B' * K], the next step's input.
    """
    stay = tf.reshape(tf.where(tf.logical_not(done)), [-1])
    stay_parents = tf.cast(tf.gather(parents, stay), tf.int64)
    rows = tf.reshape(stay[:, None] * k + stay_parents, [-1])
    state = tf.nest.map_structure(lambda s: tf.gather(s, rows), beams.state)
    beams = tf.nest.map_structure(lambda x: tf.gather(x, stay), beams._replace(state=()))
    beams = beams._replace(tokens=tf.reshape(beams.tokens, [-1]), state=state)
    sentence = tf.nest.map_structure(lambda x: tf.gather(x, stay), sentence)
    everyone_stays = tf.equal(tf.size(stay), tf.shape(parents)[0])
    context = _drop_rows(context, _beam_rows(stay, k), everyone_stays)
    return beams, sentence, context


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
