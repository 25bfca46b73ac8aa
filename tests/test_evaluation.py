import pytest

from nmt.evaluation import paired_bootstrap, score

REFS = ["the cat sat on the mat", "a dog runs in the park", "two men play chess outside"] * 30
WORSE = ["the cat sat on mat", "a dog runs in park", "two men chess"] * 30
BETTER = ["the cat sat on the mat", "a dog runs in the park", "two men play chess"] * 30


def test_paired_bootstrap_separates_a_clearly_better_system_from_chance():
    test = paired_bootstrap(BETTER, WORSE, REFS, samples=300)
    assert test["system"]["score"] > test["baseline"]["score"]
    assert test["p_value"] < 0.05
    assert "bs:300" in test["signature"]
    reverse = paired_bootstrap(WORSE, BETTER, REFS, samples=300)
    assert reverse["system"]["mean"] < reverse["baseline"]["mean"]


def test_both_bleu_conventions_are_reported():
    results = score(["Ein Mann, der läuft."], ["ein Mann , der läuft ."], lang="de")
    # Cased detokenized BLEU punishes the case and spacing differences; the lowercased,
    # Moses-tokenized convention does not see them.
    assert results["bleu_tokenized"]["score"] == pytest.approx(100.0)
    assert results["bleu"]["score"] < 100.0
