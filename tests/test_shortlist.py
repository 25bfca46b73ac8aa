"""The lexical shortlist: what it counts, which candidates a batch gets, and decoding with it."""

import numpy as np
import pytest
import tensorflow as tf
from conftest import run_nmt

from nmt.constants import EOS_ID
from nmt.decoding.shortlist import SPECIAL_IDS, Shortlist, build_shortlist
from nmt.errors import NmtError


def test_each_source_piece_keeps_the_target_pieces_that_occur_with_it_most():
    """Source 10 always comes with target 20; target 30 is in every sentence, so its Dice
    coefficient with 10 is lower, but it is the most frequent piece."""
    sources = [[10, 11], [10], [11, 12], [10, 12]]
    targets = [[20, 30], [20, 30], [30, 31], [20, 30, 31]]
    shortlist = build_shortlist(sources, targets, 16, 40, per_source=3, frequent=2)
    assert list(shortlist.table[10]) == [20, 30, 31]
    assert list(shortlist.table[11]) == [30, 31, 20]
    assert list(shortlist.table[5]) == [EOS_ID] * 3  # never seen: only EOS fills it
    assert list(shortlist.frequent) == [30, 20]


def test_a_batch_gets_the_special_pieces_the_frequent_ones_and_its_own_in_order():
    table = np.full((8, 2), EOS_ID, np.int32)
    table[5] = [17, 9]
    table[6] = [9, 12]
    shortlist = Shortlist(table, np.array([40, 12], np.int32))
    found = shortlist.candidates(tf.constant([[5, 6], [6, 0]], tf.int32)).numpy()
    assert list(found) == list(range(SPECIAL_IDS)) + [9, 12, 17, 40]


def test_a_shortlist_of_another_vocabulary_is_refused(tmp_path):
    path = tmp_path / "shortlist.npz"
    Shortlist(np.zeros((8, 2), np.int32), np.zeros(1, np.int32)).save(path)
    assert len(Shortlist.load(path, 8).table) == 8
    with pytest.raises(NmtError, match="source vocabulary of 8 pieces, the model has 9"):
        Shortlist.load(path, 9)
    (tmp_path / "bad.npz").write_text("no")
    with pytest.raises(NmtError, match="not a shortlist"):
        Shortlist.load(tmp_path / "bad.npz")


@pytest.mark.slow
def test_a_shortlist_of_every_piece_translates_exactly_as_the_full_search(trained_run, toy_data):
    from nmt.decoding.translator import Translator

    full = Translator.load(trained_run)
    vocab = full.tokenizer.target_vocab_size
    table = np.full((full.tokenizer.source_vocab_size, 1), EOS_ID, np.int32)
    everything = Shortlist(table, np.arange(vocab, dtype=np.int32)[::-1].copy())
    listed = Translator(full.models, full.tokenizer, full.decoding, shortlist=everything)
    sentences = toy_data["test.en"].read_text().splitlines()[:40]
    for beam in (1, 3):
        a = full.translate_nbest(sentences, beam_size=beam)
        b = listed.translate_nbest(sentences, beam_size=beam)
        assert [h[0].text for h in a] == [h[0].text for h in b]
        np.testing.assert_allclose([h[0].score for h in a], [h[0].score for h in b], atol=1e-5)


@pytest.mark.slow
def test_nmt_shortlist_then_translate_with_it(trained_run, toy_data, tmp_path):
    """A small shortlist (5 pieces per source piece, 10 frequent ones) keeps at least 90% of the
    toy model's beam-3 translations (a bound, not a measured rate)."""
    path = tmp_path / "lex.npz"
    made = run_nmt(
        "shortlist",
        "--run-dir",
        str(trained_run),
        "--per-source",
        "5",
        "--frequent",
        "10",
        "--output",
        str(path),
    )
    assert "2,500 training pairs" in made.stdout and path.exists()
    full = tmp_path / "full.txt"
    short = tmp_path / "short.txt"
    common = ["translate", "--run-dir", str(trained_run), "--input", str(toy_data["test.en"])]
    run_nmt(*common, "--output", str(full))
    run_nmt(*common, "--output", str(short), "--shortlist", str(path))
    a, b = full.read_text().splitlines(), short.read_text().splitlines()
    assert len(b) == len(toy_data["test.en"].read_text().splitlines())
    assert np.mean([x == y for x, y in zip(a, b, strict=True)]) >= 0.9
