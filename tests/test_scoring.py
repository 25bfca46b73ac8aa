"""Forced decoding (`nmt score`): it gives back the search's own log-probabilities."""

import numpy as np
import pytest
import tensorflow as tf
from conftest import run_nmt

from nmt.constants import BOS_ID, PAD_ID
from nmt.decoding.scoring import ForcedDecoder
from nmt.decoding.search import greedy_search
from nmt.decoding.translator import Translator

SENTENCES = [
    "three hundred forty two",
    "seven",
    "eighty one thousand six hundred twelve",
    "nine hundred thousand",
    "fifty five",
    "two thousand nineteen",
]


@pytest.fixture(scope="module")
def translator(trained_run):
    return Translator.load(trained_run)


@pytest.fixture(scope="module")
def greedy(translator):
    """Greedy search's piece ids and scores for SENTENCES, run as the Translator runs it."""
    model = translator.model
    ids = translator.tokenizer.encode_source(SENTENCES)
    source = np.full((len(ids), max(map(len, ids))), PAD_ID, np.int32)
    for row, one in enumerate(ids):
        source[row, : len(one)] = one
    memory, state = model.encode(tf.constant(source))
    weights = model.step_weights()

    def step_fn(tokens, state, memory):
        out = model.step(tokens, state, memory, weights)
        return tf.nn.log_softmax(out.logits), out.state, out.attention

    found = greedy_search(
        step_fn, state, tf.fill([len(ids)], BOS_ID), tf.fill([len(ids)], 30), context=memory
    )
    lengths = found.lengths.numpy()[:, 0]
    tokens = [found.tokens.numpy()[row, 0, :n].tolist() for row, n in enumerate(lengths)]
    return ids, tokens, found.log_probs.numpy()[:, 0]


@pytest.mark.slow  # the trained toy run
def test_forced_decoding_of_greedy_ids_gives_greedy_scores(translator, greedy):
    # Greedy's score sums log p of its chosen pieces and of EOS; the forced pass over the same
    # ids must sum the same numbers.
    sources, targets, scores = greedy
    forced = ForcedDecoder.from_translator(translator, batch_size=4).run_ids(sources, targets)
    for one, target, score in zip(forced, targets, scores):
        assert len(one.log_probs) == len(target) + 1  # pieces and EOS
        assert np.all(one.log_probs <= 0)
        np.testing.assert_allclose(one.log_probs.sum(), score, atol=1e-4)


@pytest.mark.slow
def test_score_command_reproduces_greedy_scores_of_its_translations(
    translator, greedy, trained_run, tmp_path
):
    # Text is what users score, so only translations whose detokenized text tokenizes back to
    # the same pieces can be compared exactly; on the toy task that is nearly all of them.
    sources, targets, scores = greedy
    texts = translator.tokenizer.decode_target(targets)
    exact = [
        i for i, t in enumerate(texts) if translator.tokenizer.encode_target([t])[0] == targets[i]
    ]
    assert len(exact) >= len(SENTENCES) - 1, texts
    (tmp_path / "src").write_text("".join(SENTENCES[i] + "\n" for i in exact))
    (tmp_path / "tgt").write_text("".join(texts[i] + "\n" for i in exact))
    result = run_nmt(
        "score",
        "--run-dir",
        str(trained_run),
        "--source",
        str(tmp_path / "src"),
        "--target",
        str(tmp_path / "tgt"),
        "--per-piece",
    )
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert len(rows) == len(exact)
    for row, i in zip(rows, exact):
        total, mean, pieces = float(row[0]), float(row[1]), [float(p) for p in row[2].split()]
        assert total == pytest.approx(scores[i], abs=2e-4)
        assert len(pieces) == len(targets[i]) + 1
        assert mean == pytest.approx(total / len(pieces), abs=1e-4)
        assert sum(pieces) == pytest.approx(total, abs=1e-3)


@pytest.mark.slow  # the trained toy run
def test_batched_scores_equal_one_by_one_scores_in_input_order(translator):
    # Batches are sorted by length; the output must still follow the input order.
    sources = SENTENCES + ["", "six"]
    targets = [
        "drei hundert zwei und vierzig",
        "sieben",
        "acht",
        "neun hundert tausend",
        "",
        "fünf und fünfzig",
        "null",
        "sechs",
    ]
    decoder = ForcedDecoder.from_translator(translator, batch_size=3)
    seen = []
    batched = decoder.score(sources, targets, progress=seen.append)
    assert sum(seen) == len(sources)
    for source, target, score in zip(sources, targets, batched):
        alone = decoder.score([source], [target])[0]
        assert score.total == pytest.approx(alone.total, abs=1e-4)
    assert len(batched[4].log_probs) == 1  # an empty target is just EOS
    assert batched[1].total > batched[2].total  # "sieben" is the translation of "seven"


@pytest.mark.slow
def test_score_rejects_files_of_different_lengths_in_one_line(trained_run, tmp_path):
    (tmp_path / "a.en").write_text("one\ntwo\n")
    (tmp_path / "b.de").write_text("eins\n")
    result = run_nmt(
        "score",
        "--run-dir",
        str(trained_run),
        "--source",
        str(tmp_path / "a.en"),
        "--target",
        str(tmp_path / "b.de"),
        check=False,
    )
    assert result.returncode == 1
    message = result.stderr.strip()
    assert "\n" not in message
    assert "a.en has 2 lines" in message and "b.de has 1 lines" in message
