import math

import numpy as np
import pytest
import tensorflow as tf

from nmt.constants import BOS_ID, EOS_ID
from nmt.decoding.beam_search import beam_search
from nmt.decoding.search import (
    coverage_penalty,
    greedy_search,
    length_penalty,
    tile_beam,
)

A, B = 4, 5
V = 6


def table_step_fn(table: np.ndarray):
    """A fake model whose next-token distribution depends only on the previous token."""
    log_table = tf.constant(np.log(np.maximum(table, 1e-20)), tf.float32)

    def step_fn(tokens, state, context):
        return tf.gather(log_table, tokens), state, None

    return step_fn


def trap_table() -> np.ndarray:
    """Greedy takes A (0.6) but every sentence after A is unlikely; B EOS has p = 0.4."""
    table = np.full((V, V), 1e-20)
    table[BOS_ID, [A, B]] = [0.6, 0.4]
    table[A, [A, B, EOS_ID]] = [0.35, 0.35, 0.3]
    table[B, EOS_ID] = 1.0
    table[EOS_ID, EOS_ID] = 1.0
    return table


def search(k, **options):
    start = tf.fill([2], BOS_ID)
    state = tf.zeros([2, 1])
    limits = tf.constant([6, 6], tf.int32)
    if k == 1:
        return greedy_search(table_step_fn(trap_table()), state, start, limits)
    return beam_search(table_step_fn(trap_table()), state, start, limits, beam_size=k, **options)


def test_beam_finds_the_known_best_path_greedy_misses():
    greedy = search(1)
    assert greedy.tokens.numpy()[0, 0, 0] == A
    beam = search(3, n_best=3)
    tokens, lengths, scores = (x.numpy() for x in beam[:3])
    assert list(tokens[0, 0, : lengths[0, 0]]) == [B]
    assert scores[0, 0] == pytest.approx(math.log(0.4), abs=1e-5)
    # The runner-up is A B EOS (0.6 * 0.35); scores come best first.
    assert list(tokens[0, 1, : lengths[0, 1]]) == [A, B]
    assert scores[0, 1] == pytest.approx(math.log(0.21), abs=1e-5)
    assert np.all(np.diff(scores[0]) <= 0)


def test_beam_size_one_equals_greedy():
    greedy, beam = (
        search(1),
        beam_search(
            table_step_fn(trap_table()),
            tf.zeros([2, 1]),
            tf.fill([2], BOS_ID),
            tf.constant([6, 6]),
            beam_size=1,
        ),
    )
    np.testing.assert_array_equal(greedy.tokens, beam.tokens)
    np.testing.assert_allclose(greedy.scores, beam.scores, atol=1e-6)


def test_max_length_forces_the_end():
    table = np.full((V, V), 1e-20)
    table[:, A] = 1.0  # never ends by itself
    start, state = tf.fill([2], BOS_ID), tf.zeros([2, 1])
    limits = tf.constant([3, 5], tf.int32)
    for result in (
        greedy_search(table_step_fn(table), state, start, limits),
        beam_search(table_step_fn(table), state, start, limits, beam_size=2),
    ):
        # Lengths exclude EOS: at most limit - 1 real tokens.
        assert list(result.lengths.numpy()[:, 0]) == [2, 4]


def reference_greedy(log_table: np.ndarray, limit: int) -> tuple[list[int], float]:
    """Greedy search written out: the likeliest next token, EOS forced at the length limit."""
    tokens, total, previous = [], 0.0, BOS_ID
    for t in range(limit):
        row = log_table[previous]
        token = EOS_ID if t >= limit - 1 else int(np.argmax(row))
        total += float(row[token])
        if token == EOS_ID:
            return tokens, total
        tokens.append(token)
        previous = token
    raise AssertionError("the limit forces EOS")


def test_greedy_search_equals_greedy_written_out():
    # Random tables: some sentences end by themselves, others at their limit, where the
    # search must substitute EOS and charge its log-probability.
    rng = np.random.default_rng(7)
    table = rng.dirichlet(np.full(20, 0.3), size=20)
    table[5::4, EOS_ID] = 2.0  # EOS is the likeliest token after 5, 9, 13 and 17
    table /= table.sum(axis=1, keepdims=True)
    log_table = np.log(table).astype(np.float32)
    limits = np.array([1, 2, 3, 5, 8, 13], np.int32)
    result = greedy_search(
        table_step_fn(table),
        tf.zeros([len(limits), 1]),
        tf.fill([len(limits)], BOS_ID),
        tf.constant(limits),
    )
    ended_by_limit = 0
    for row, limit in enumerate(limits):
        tokens, log_prob = reference_greedy(log_table, int(limit))
        length = int(result.lengths[row, 0])
        assert list(result.tokens.numpy()[row, 0, :length]) == tokens
        assert float(result.log_probs[row, 0]) == pytest.approx(log_prob, abs=1e-4)
        ended_by_limit += len(tokens) == limit - 1
    assert 0 < ended_by_limit < len(limits)


def test_length_penalty_known_values():
    # Wu et al. 2016: lp(Y) = ((5 + |Y|) / 6) ** alpha.
    assert float(length_penalty(tf.constant(1), 0.6)) == pytest.approx(1.0)
    assert float(length_penalty(tf.constant(7), 0.6)) == pytest.approx(2.0**0.6)
    assert float(length_penalty(tf.constant(13), 1.0)) == pytest.approx(3.0)
    assert float(length_penalty(tf.constant(13), 0.0)) == pytest.approx(1.0)


def test_coverage_penalty_known_values():
    coverage = tf.constant([[0.5, 1.7, 0.25, 0.0]])
    mask = tf.constant([[True, True, True, False]])
    expected = 0.2 * (math.log(0.5) + math.log(1.0) + math.log(0.25))
    assert float(coverage_penalty(coverage, mask, 0.2)[0]) == pytest.approx(expected, rel=1e-6)


def test_length_penalty_prefers_longer_hypotheses():
    # C EOS has p = 0.55; D E F EOS has p = 0.45. Plain log-probability picks C; with
    # alpha = 2, -0.598 / ((5 + 2) / 6) ** 2 = -0.44 loses to -0.799 / ((5 + 4) / 6) ** 2 = -0.36.
    c, d, e, f = 4, 5, 6, 7
    table = np.full((8, 8), 1e-20)
    table[BOS_ID, [c, d]] = [0.55, 0.45]
    table[[c, f], EOS_ID] = 1.0
    table[d, e] = table[e, f] = 1.0
    table[EOS_ID, EOS_ID] = 1.0
    step = table_step_fn(table)
    start, state, limits = tf.fill([1], BOS_ID), tf.zeros([1, 1]), tf.constant([6])
    plain = beam_search(step, state, start, limits, beam_size=3, alpha=0.0)
    assert list(plain.tokens.numpy()[0, 0, :1]) == [c]
    assert plain.lengths.numpy()[0, 0] == 1
    normalised = beam_search(step, state, start, limits, beam_size=3, alpha=2.0)
    assert normalised.lengths.numpy()[0, 0] == 3
    assert float(normalised.scores[0, 0]) == pytest.approx(math.log(0.45) / 2.25, rel=1e-5)


def test_search_compiles_to_the_same_result():
    compiled = tf.function(lambda: search(3, n_best=2))()
    eager = search(3, n_best=2)
    for a, b in zip(compiled, eager, strict=True):
        np.testing.assert_array_equal(a, b)


def test_search_stops_once_no_live_beam_can_win():
    # After step 2, B EOS (p = 0.4) leads and every live beam is already below it, so the
    # search ends long before the length limit of 50 instead of growing the losers.
    step = table_step_fn(trap_table())
    result = beam_search(
        step, tf.zeros([1, 1]), tf.fill([1], BOS_ID), tf.constant([50]), beam_size=3
    )
    assert result.tokens.shape[-1] <= 3
    assert list(result.tokens.numpy()[0, 0, : result.lengths.numpy()[0, 0]]) == [B]


@pytest.mark.parametrize("alpha", [0.6, 1.5])
def test_heuristic_stopping_ends_sooner_with_the_same_best(alpha):
    # B EOS leads after step 2. "exact" keeps growing A... until even a hypothesis at the
    # length limit, with its larger length penalty, could not overtake it; "heuristic" stops
    # as soon as B EOS outranks every live beam's current score.
    def run(stopping):
        step = table_step_fn(trap_table())
        return beam_search(
            step,
            tf.zeros([1, 1]),
            tf.fill([1], BOS_ID),
            tf.constant([50]),
            beam_size=3,
            alpha=alpha,
            stopping=stopping,
        )

    exact, heuristic = run("exact"), run("heuristic")
    assert heuristic.tokens.shape[-1] == 2 < exact.tokens.shape[-1]
    np.testing.assert_array_equal(heuristic.scores, exact.scores)
    assert list(heuristic.tokens.numpy()[0, 0, :1]) == [B]


def test_without_length_penalty_both_stopping_rules_are_the_same():
    # With alpha = 0 a live score can only fall, so the heuristic is exact.
    exact = search(3, n_best=2, stopping="exact")
    heuristic = search(3, n_best=2, stopping="heuristic")
    for a, b in zip(exact, heuristic, strict=True):
        np.testing.assert_array_equal(a, b)


def chain_table() -> np.ndarray:
    """A, B, A, B, ... with EOS unlikely after every token: it runs to the length limit."""
    table = np.full((V, V), 1e-20)
    table[BOS_ID, A] = 1.0
    table[A, [B, EOS_ID]] = [0.99, 0.01]
    table[B, [A, EOS_ID]] = [0.99, 0.01]
    table[EOS_ID, EOS_ID] = 1.0
    return table


@pytest.mark.parametrize("stopping", ["exact", "heuristic"])
def test_sentences_that_finish_early_leave_the_batch_without_changing_any_result(stopping):
    # Each sentence reads its own table through the context; the trap sentences are done
    # after 2 steps and leave, the chain one runs to its limit of 8. Batched or alone, every
    # sentence gets the same hypotheses.
    tables = tf.constant(np.log(np.stack([trap_table(), chain_table()])), tf.float32)

    def step_fn(tokens, state, context):
        return tf.gather_nd(tables, tf.stack([context, tokens], 1)), state, None

    def run(which, limits):
        k = 3
        return beam_search(
            step_fn,
            tf.zeros([len(which), 1]),
            tf.fill([len(which)], BOS_ID),
            tf.constant(limits),
            beam_size=k,
            alpha=0.6,
            n_best=2,
            stopping=stopping,
            context=tile_beam(tf.constant(which), k),
        )

    together = run([0, 1, 0, 1], [6, 8, 6, 5])
    for i, (which, limit) in enumerate([(0, 6), (1, 8), (0, 6), (1, 5)]):
        alone = run([which], [limit])
        np.testing.assert_array_equal(together.lengths[i], alone.lengths[0])
        np.testing.assert_allclose(together.scores[i], alone.scores[0], rtol=1e-6)
        for n in range(2):
            length = int(alone.lengths[0, n])
            np.testing.assert_array_equal(
                together.tokens[i, n, :length], alone.tokens[0, n, :length]
            )
    assert list(together.lengths.numpy()[:, 0]) == [1, 7, 1, 4]


def test_an_ended_hypothesis_pushed_out_of_the_beam_is_still_returned():
    # BOS -> EOS (p = 0.06) ends at step 0, then loses its slot to two live beams through
    # "a" (0.9), whose every completion ends up less likely than 0.06.
    a, b, c, d = 4, 5, 6, 7
    table = np.full((8, 8), 1e-20)
    table[BOS_ID, [a, EOS_ID, b]] = [0.9, 0.06, 0.04]
    table[a, [c, d, EOS_ID]] = [0.5, 0.45, 0.05]
    table[[c, d], c] = table[[c, d], d] = 0.49
    table[[c, d], EOS_ID] = 0.02
    table[EOS_ID, EOS_ID] = 1.0
    result = beam_search(
        table_step_fn(table), tf.zeros([1, 1]), tf.fill([1], BOS_ID), tf.constant([5]), beam_size=2
    )
    assert result.lengths.numpy()[0, 0] == 0
    assert float(result.scores[0, 0]) == pytest.approx(math.log(0.06), abs=1e-5)


@pytest.mark.parametrize("alpha", [0.0, 0.6, 1.5])
def test_a_beam_as_wide_as_all_prefixes_finds_the_exhaustive_optimum(alpha):
    """Beam search ranks only each beam's top K tokens plus EOS; with K at least the number
    of prefixes it must still find the best complete sentence of all, found by enumeration."""
    import itertools

    rng = np.random.default_rng(7)
    table = rng.dirichlet(np.full(V, 0.5), size=V)
    log_table = np.log(table)
    limit = 4  # output tokens including EOS
    best = -np.inf
    for length in range(limit):
        for words in itertools.product([t for t in range(V) if t != EOS_ID], repeat=length):
            path = [BOS_ID, *words, EOS_ID]
            log_prob = sum(log_table[a, b] for a, b in zip(path, path[1:]))
            best = max(best, log_prob / ((5 + length + 1) / 6) ** alpha)
    found = beam_search(
        table_step_fn(table),
        tf.zeros([1, 1]),
        tf.fill([1], BOS_ID),
        tf.constant([limit]),
        beam_size=(V - 1) ** (limit - 1),
        alpha=alpha,
    )
    assert float(found.scores[0, 0]) == pytest.approx(best, abs=1e-4)


@pytest.mark.parametrize("vocab", [3, 60, 128, 8000, 8001, 8009])
def test_blocked_top_k_equals_top_k(vocab):
    from nmt.decoding.search import top_k_rows

    x = tf.constant(np.random.default_rng(vocab).normal(size=(7, vocab)), tf.float32)
    values, columns = top_k_rows(x, 5)
    expected_values, expected_columns = tf.math.top_k(x, k=min(5, vocab))
    np.testing.assert_array_equal(values, expected_values)
    np.testing.assert_array_equal(columns, expected_columns)


def attention_step_fn(table: np.ndarray, attention: np.ndarray):
    """A fake model whose next-token distribution and attention [T_s] depend only on the
    previous token."""
    log_table = tf.constant(np.log(np.maximum(table, 1e-20)), tf.float32)
    attention = tf.constant(attention, tf.float32)

    def step_fn(tokens, state, context):
        return tf.gather(log_table, tokens), state, tf.gather(attention, tokens)

    return step_fn


def exhaustive_nbest(table, limit, alpha=0.0, beta=0.0, attention=None, n=1):
    """The n best complete sentences of at most `limit` tokens (EOS included), found by
    enumerating them all, scored as beam search scores them: (words, score, log-prob)."""
    import itertools

    vocab = table.shape[0]
    log_table = np.log(np.maximum(table, 1e-20))
    found = []
    for length in range(limit):
        for words in itertools.product([t for t in range(vocab) if t != EOS_ID], repeat=length):
            path = [BOS_ID, *words, EOS_ID]
            log_prob = sum(log_table[a, b] for a, b in zip(path, path[1:]))
            score = log_prob / ((5 + length + 1) / 6) ** alpha
            if beta:
                coverage = attention[path[:-1]].sum(axis=0)  # one attention row per step
                score += beta * np.log(np.clip(coverage, 1e-10, 1.0)).sum()
            found.append((list(words), score, log_prob))
    return sorted(found, key=lambda f: -f[1])[:n]


def coverage_trap_table():
    """BOS -> a (0.5) | EOS (0.3) | b (0.16): EOS is in BOS's top 2 tokens, but ending at once
    covers only source word 0 and the coverage penalty sinks it below b, whose b EOS (0.16,
    full coverage) beats every sentence through a (a c EOS: 0.15)."""
    a, b, c, d = 4, 5, 6, 7
    table = np.full((8, 8), 1e-20)
    table[BOS_ID, [a, EOS_ID, b, c, d]] = [0.5, 0.3, 0.16, 0.02, 0.02]
    table[a, [c, d, EOS_ID, b]] = [0.3, 0.26, 0.24, 0.2]
    table[[b, c, d, EOS_ID], EOS_ID] = 1.0
    attention = np.full((8, 2), 0.5)
    attention[BOS_ID] = [1.0, 0.0]
    attention[[a, b]] = [0.0, 1.0]
    return table, attention


@pytest.mark.parametrize("live_beam", ["narrowing", "full"])
def test_coverage_penalty_candidate_cut_is_exact(live_beam):
    # With beta > 0 the EOS of a beam may rank below its (K + 1)-th token, which must then
    # still be a candidate: beam search with K = 2 has to find b EOS, the exhaustive optimum.
    table, attention = coverage_trap_table()
    [(words, best, _)] = exhaustive_nbest(table, 4, beta=1.0, attention=attention)
    assert words == [5]
    found = beam_search(
        attention_step_fn(table, attention),
        tf.zeros([1, 1]),
        tf.fill([1], BOS_ID),
        tf.constant([4]),
        beam_size=2,
        beta=1.0,
        source_mask=tf.constant([[True, True]]),
        live_beam=live_beam,
    )
    assert list(found.tokens.numpy()[0, 0, : found.lengths.numpy()[0, 0]]) == words
    assert float(found.scores[0, 0]) == pytest.approx(best, abs=1e-4)


def test_greedy_and_beam_report_the_same_two_scores():
    # Both searches return the GNMT score beam search ranks by (here log P / lp with
    # alpha = 1) and the plain log-probability of the same hypothesis, EOS included. Both find
    # A B EOS: p = 0.6 * 0.7, 3 tokens, lp = 8 / 6.
    table = np.full((V, V), 1e-20)
    table[BOS_ID, [A, B]] = [0.6, 0.4]
    table[A, [B, EOS_ID]] = [0.7, 0.3]
    table[[B, EOS_ID], EOS_ID] = 1.0
    start, state, limits = tf.fill([2], BOS_ID), tf.zeros([2, 1]), tf.constant([6, 6])
    greedy = greedy_search(table_step_fn(table), state, start, limits, alpha=1.0)
    for k in (1, 3):
        beam = beam_search(table_step_fn(table), state, start, limits, beam_size=k, alpha=1.0)
        for result in (greedy, beam):
            assert list(result.tokens.numpy()[0, 0, :2]) == [A, B]
            assert float(result.log_probs[0, 0]) == pytest.approx(math.log(0.42), abs=1e-5)
            assert float(result.scores[0, 0]) == pytest.approx(math.log(0.42) * 6 / 8, abs=1e-5)


def best_words(result, n=0, row=0):
    return list(result.tokens.numpy()[row, n, : result.lengths.numpy()[row, n]])


def test_coverage_penalty_changes_the_winner():
    # Without coverage penalty ending at once (p = 0.3) wins; it covers only source word 0,
    # so with beta = 1 b EOS (p = 0.16, both words covered) wins, as exhaustive search says.
    table, attention = coverage_trap_table()
    step = attention_step_fn(table, attention)
    mask = tf.constant([[True, True]])
    start, state, limits = tf.fill([1], BOS_ID), tf.zeros([1, 1]), tf.constant([4])
    for beta, words in ((0.0, []), (1.0, [5])):
        [(best, score, _)] = exhaustive_nbest(table, 4, beta=beta, attention=attention)
        assert best == words
        found = beam_search(step, state, start, limits, beam_size=3, beta=beta, source_mask=mask)
        assert best_words(found) == words
        assert float(found.scores[0, 0]) == pytest.approx(score, abs=1e-4)


def late_bloomer_table() -> np.ndarray:
    """BOS -> EOS (0.4) | a (0.35) | b (0.25). With alpha = 1 the long b c d e EOS
    (p = 0.25, lp = 10 / 6) beats ending at once (p = 0.4, lp = 1), and a's sentences
    (a EOS, a f ... f EOS, each f halving p) lose to both."""
    a, b, c, d, e, f = 4, 5, 6, 7, 8, 9
    table = np.full((10, 10), 1e-20)
    table[BOS_ID, [EOS_ID, a, b]] = [0.4, 0.35, 0.25]
    table[a, [EOS_ID, f]] = table[f, [EOS_ID, f]] = [0.5, 0.5]
    table[b, c] = table[c, d] = table[d, e] = table[e, EOS_ID] = table[EOS_ID, EOS_ID] = 1.0
    return table


def test_a_full_live_beam_finds_what_a_narrowing_one_misses():
    # K = 2. At step 0 the narrowing beam keeps [BOS EOS (ended), a] and drops b; the full
    # beam moves BOS EOS to the pool and keeps a and b live, and b grows into the best.
    table = late_bloomer_table()
    [(best, score, log_prob)] = exhaustive_nbest(table, 6, alpha=1.0)
    assert best == [5, 6, 7, 8]

    def run(live_beam):
        return beam_search(
            table_step_fn(table),
            tf.zeros([1, 1]),
            tf.fill([1], BOS_ID),
            tf.constant([6]),
            beam_size=2,
            alpha=1.0,
            live_beam=live_beam,
        )

    narrowing, full = run("narrowing"), run("full")
    assert best_words(narrowing) == []
    assert best_words(full) == best
    assert float(full.scores[0, 0]) == pytest.approx(score, abs=1e-5)
    assert float(full.log_probs[0, 0]) == pytest.approx(log_prob, abs=1e-5)


def test_a_full_beam_of_one_is_greedy_when_greedy_ends_best():
    # A full beam of 1 follows greedy's path but also pools every earlier ending, so it
    # returns greedy's sentence when that one scores best of them: here A B EOS (0.54)
    # beats EOS (0.1) and A EOS (0.36).
    table = np.full((V, V), 1e-20)
    table[BOS_ID, [A, EOS_ID]] = [0.9, 0.1]
    table[A, [B, EOS_ID]] = [0.6, 0.4]
    table[B, [EOS_ID, A]] = [0.9, 0.1]
    table[EOS_ID, EOS_ID] = 1.0
    start, state, limits = tf.fill([2], BOS_ID), tf.zeros([2, 1]), tf.constant([6, 4])
    greedy = greedy_search(table_step_fn(table), state, start, limits, alpha=0.6)
    full = beam_search(
        table_step_fn(table), state, start, limits, beam_size=1, alpha=0.6, live_beam="full"
    )
    np.testing.assert_array_equal(greedy.tokens, full.tokens)
    np.testing.assert_allclose(greedy.scores, full.scores, rtol=1e-6)
    np.testing.assert_allclose(greedy.log_probs, full.log_probs, rtol=1e-6)
    # Where an earlier ending beats greedy's (the trap: A EOS, 0.18, against greedy running
    # A A A ... to the limit) the full beam of 1 returns the better one.
    greedy = greedy_search(table_step_fn(trap_table()), state, start, limits)
    full = search(1 + 1, live_beam="full", n_best=1)
    assert float(full.scores[0, 0]) > float(greedy.scores[0, 0])


@pytest.mark.parametrize("alpha", [0.0, 0.6])
def test_a_wide_full_beam_returns_the_exhaustive_n_best_in_order(alpha):
    # With K at least the number of prefixes, the full beam extends every prefix and pools
    # every ending: its n-best list is exactly the n best sentences of all, best first.
    rng = np.random.default_rng(3)
    table = rng.dirichlet(np.full(V, 0.5), size=V)
    limit, n = 4, 6
    expected = exhaustive_nbest(table, limit, alpha=alpha, n=n)
    found = beam_search(
        table_step_fn(table),
        tf.zeros([1, 1]),
        tf.fill([1], BOS_ID),
        tf.constant([limit]),
        beam_size=(V - 1) ** (limit - 1),
        alpha=alpha,
        n_best=n,
        live_beam="full",
    )
    scores = found.scores.numpy()[0]
    assert np.all(np.diff(scores) <= 0)
    np.testing.assert_allclose(scores, [e[1] for e in expected], atol=1e-4)
    np.testing.assert_allclose(found.log_probs[0], [e[2] for e in expected], atol=1e-4)
    assert [best_words(found, i) for i in range(n)] == [e[0] for e in expected]


@pytest.mark.parametrize("stopping", ["exact", "heuristic"])
def test_full_beam_sentences_leave_the_batch_without_changing_any_result(stopping):
    tables = tf.constant(np.log(np.stack([trap_table(), chain_table()])), tf.float32)

    def step_fn(tokens, state, context):
        return tf.gather_nd(tables, tf.stack([context, tokens], 1)), state, None

    def run(which, limits):
        return beam_search(
            step_fn,
            tf.zeros([len(which), 1]),
            tf.fill([len(which)], BOS_ID),
            tf.constant(limits),
            beam_size=3,
            alpha=0.6,
            n_best=2,
            stopping=stopping,
            context=tile_beam(tf.constant(which), 3),
            live_beam="full",
        )

    together = run([0, 1, 0, 1], [6, 8, 6, 5])
    for i, (which, limit) in enumerate([(0, 6), (1, 8), (0, 6), (1, 5)]):
        alone = run([which], [limit])
        np.testing.assert_array_equal(together.lengths[i], alone.lengths[0])
        np.testing.assert_allclose(together.scores[i], alone.scores[0], rtol=1e-6)
        for n in range(2):
            assert best_words(together, n, i) == best_words(alone, n)
    assert list(together.lengths.numpy()[:, 0]) == [1, 7, 1, 4]


def test_full_beam_stopping_rules_agree_without_length_penalty_and_stop_early():
    # With alpha = 0 no live score can rise, so both rules are exact; on the trap table the
    # full beam ends once B EOS (0.4) beats every live prefix, long before the limit of 50.
    def run(stopping):
        return beam_search(
            table_step_fn(trap_table()),
            tf.zeros([1, 1]),
            tf.fill([1], BOS_ID),
            tf.constant([50]),
            beam_size=3,
            n_best=2,
            stopping=stopping,
            live_beam="full",
        )

    exact, heuristic = run("exact"), run("heuristic")
    for a, b in zip(exact, heuristic, strict=True):
        np.testing.assert_array_equal(a, b)
    assert exact.tokens.shape[-1] <= 4
    assert best_words(exact) == [B] and best_words(exact, 1) == [A, B]
