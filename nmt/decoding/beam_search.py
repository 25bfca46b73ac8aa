"""Batched beam search over any step function (see `nmt.decoding.search`).

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

from typing import Any, NamedTuple

import tensorflow as tf

from nmt.constants import EOS_ID
from nmt.decoding.search import (
    NEG_INF,
    SearchResult,
    StepFn,
    batch_free_shape,
    coverage_penalty,
    drop_rows,
    finalize,
    length_penalty,
    tile_beam,
    top_k_rows,
)


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
        step_fn: see `nmt.decoding.search`, with N = B * K.
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
        scores=tf.fill([batch, n_best], NEG_INF),
        log_probs=tf.fill([batch, n_best], NEG_INF),
        history=tf.zeros([batch, n_best, max_steps], tf.int32),
    )
    steps, _, _, _, out = tf.while_loop(
        not_done,
        body,
        (tf.constant(0), initial, sentence, context, out),
        shape_invariants=(
            tf.TensorShape([]),
            _beam_invariants(initial, beam_size, n_best),
            tf.nest.map_structure(batch_free_shape, sentence),
            tf.nest.map_structure(batch_free_shape, context),
            tf.nest.map_structure(lambda x: x.shape, out),
        ),
    )
    tokens, lengths = finalize(out.history[:, :, :steps])
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
    cum_log_probs = tf.tile(tf.concat([[0.0], tf.fill([k - 1], NEG_INF)], 0)[None], [batch, 1])
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
            scores=tf.fill([batch, n_best], NEG_INF),
            log_probs=tf.fill([batch, n_best], NEG_INF),
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
    invariants = tf.nest.map_structure(batch_free_shape, beams)
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
    top_log_probs = tf.where(tf.equal(top_tokens, EOS_ID), NEG_INF, top_log_probs)
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
        tf.logical_and(only_eos, tf.logical_not(eos_slot)), NEG_INF, step_log_probs
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
    ended_scores = tf.where(ended_now, scores, NEG_INF)
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
    unfinished = tf.where(eos_slot, NEG_INF, candidates.ranking)
    _, flat = tf.math.top_k(tf.reshape(unfinished, [active, -1]), k=settings.k)
    # Where K exceeds the real candidates (a tiny vocabulary) EOS slots fill the rest; they
    # must live on as dead hypotheses, not as ones that went on after their EOS.
    log_probs = tf.where(eos_slot, NEG_INF, candidates.log_probs)
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
    bound = tf.where(beams.finished, NEG_INF, live)
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
    context = drop_rows(context, _beam_rows(stay, k), everyone_stays)
    return beams, sentence, context


class _Sentences(NamedTuple):
    """What beam search keeps per sentence still searching; leading dimension [B]."""

    index: tf.Tensor  # [B] int32 position in the input batch
    limit: tf.Tensor  # [B, 1] int32 most output tokens, EOS included
    mask: tf.Tensor  # [B, 1, T_s] bool real source tokens (for the coverage penalty)


def _beam_rows(sentences: tf.Tensor, k: int) -> tf.Tensor:
    """The [B' * K] rows of a [B * K, ...] tensor that hold the K beams of `sentences` [B']."""
    return tf.reshape(sentences[:, None] * k + tf.range(k, dtype=sentences.dtype), [-1])
