"""Word alignments from attention, and attention heat maps."""

import random

import numpy as np
import pytest
from conftest import TINY_CONFIG, built_once, run_nmt

from nmt.decoding.alignment import Link, hard_alignment, pharaoh, word_indices
from nmt.decoding.scoring import ForcedDecoder
from nmt.decoding.translator import Translator
from nmt.toy import english, german

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_pieces_map_onto_whitespace_words():
    pieces = ["▁drei", "▁hundert", "▁vier", "zig", "▁", "und"]
    assert word_indices(pieces, 4) == [0, 1, 2, 2, 2, 3]
    assert word_indices(["ab", "▁c"], 2) == [0, 1]  # a line may start inside a word
    assert word_indices(["▁a", "▁b", "▁c"], 2) == [0, 1, 1]  # never past the last word
    with pytest.raises(ValueError, match="`words`"):
        word_indices(["▁a"], 0)


def test_each_target_word_links_to_the_source_word_it_attends_to_most():
    # Source "forty two" (pieces ▁for ty ▁two), target "zwei und vierzig" (5 pieces).
    attention = np.array(
        [
            [0.1, 0.1, 0.8],  # ▁zwei -> two
            [0.3, 0.3, 0.4],  # ▁und: "forty" gets 0.6 over its two pieces
            [0.6, 0.2, 0.2],  # ▁vier -> forty
            [0.0, 0.6, 0.4],  # zig   -> forty (with ▁vier: mean 0.7 vs 0.3)
            [0.5, 0.0, 0.5],  # EOS, ignored
        ]
    )
    links = hard_alignment(
        attention,
        ["▁for", "ty", "▁two"],
        ["▁zwei", "▁und", "▁vier", "zig"],
        "forty two",
        "zwei und vierzig",
    )
    assert links == [Link(1, 0), Link(0, 1), Link(0, 2)]
    assert pharaoh(links) == "1-0 0-1 0-2"
    assert hard_alignment(attention[:1], ["▁a"], [], "a", "") == []


def gold_alignment(n: int) -> tuple[list[tuple[int, int, bool]], int, int]:
    """The toy task's true word alignment of english(n) and german(n).

    Returns:
        (source word, target word, monotone) links and the two word counts. "forty two" ->
        "zwei und vierzig" swaps its words (not monotone) and "und" has no link; every other
        word is translated in place (monotone).
    """
    if n < 20 or (n < 100 and n % 10 == 0):
        return [(0, 0, True)], 1, 1
    if n < 100:
        return [(1, 0, False), (0, 2, False)], 2, 3
    scale = 1000 if n >= 1000 else 100
    links, n_en, n_de = gold_alignment(n // scale)
    links.append((n_en, n_de, True))  # "hundred"/"thousand"
    n_en, n_de = n_en + 1, n_de + 1
    if n % scale:
        rest, r_en, r_de = gold_alignment(n % scale)
        links += [(s + n_en, t + n_de, m) for s, t, m in rest]
        n_en, n_de = n_en + r_en, n_de + r_de
    return links, n_en, n_de


def test_gold_alignment_matches_the_toy_task():
    for n in (7, 40, 42, 300, 342, 5000, 81612, 900000):
        _, n_en, n_de = gold_alignment(n)
        assert (n_en, n_de) == (len(english(n).split()), len(german(n).split())), n


# Measured with the GNMT-style model below on these 150 numbers: 63% of the monotone links
# (hundreds, thousands, units) and 89% of the reordered ones ("zwei und vierzig") are found;
# most misses are "hundert"/"tausend" attending to the word after their English counterpart,
# what comes next deciding the word. The Luong-style tiny model (`trained_run`, top-layer
# attention) finds only 48% of the monotone links: its attention parks on the first source
# word for many steps. Where the model attends moves with the arithmetic that trained it: on an
# AVX2-only CPU the same config found 64% / 98% with Eigen's matmuls and 53% / 75% with
# oneDNN's (which translates val perfectly, loss 0.008). It moves with the data order too: with
# every epoch shuffled whole (prepared data, 2026-12-08) seed 1234 finds 35% / 100% (val BLEU
# 99.5), seeds 1235 and 1236 50% / 21% and 15% / 9% (BLEU 90.9, 78.8). The floors sit below
# seed 1234's figures on both CPUs: a model that stops aligning at all still fails them.
MONOTONE_SHARE = 0.30
REORDERED_SHARE = 0.70


@pytest.fixture(scope="module")
def gnmt_run(toy_data, tmp_path_factory):
    """The tiny toy model with GNMT's bottom-layer attention (about a minute to train)."""

    def train(root):
        config = root / "toy.yaml"
        text = TINY_CONFIG.format(data=toy_data["train.en"].parent)
        config.write_text(
            text.replace("  dropout: 0.0\n", "  dropout: 0.0\n  attention_layer: bottom\n")
        )
        run_nmt("train", "--config", str(config), "--run-dir", str(root / "run"))

    return built_once(tmp_path_factory, "gnmt", train) / "run"


@pytest.mark.slow
def test_most_alignment_points_are_right_on_the_toy_task(gnmt_run):
    # Forced decoding of the true German numbers, so every gold link is in the output.
    translator = Translator.load(gnmt_run)
    rng = random.Random(3)
    numbers = [rng.randrange(1, 10 ** rng.randint(3, 6)) for _ in range(150)]
    sources, targets = [english(n) for n in numbers], [german(n) for n in numbers]
    decoder = ForcedDecoder.from_translator(translator)
    tokenizer = translator.tokenizer
    hits, total = {True: 0, False: 0}, {True: 0, False: 0}
    for n, source, target, forced in zip(numbers, sources, targets, decoder.run(sources, targets)):
        links = hard_alignment(
            forced.attention,
            tokenizer.source_pieces(tokenizer.encode_source([source])[0]),
            tokenizer.target_pieces(tokenizer.encode_target([target])[0]),
            source,
            target,
        )
        found = {(link.source, link.target) for link in links}
        for s, t, monotone in gold_alignment(n)[0]:
            hits[monotone] += (s, t) in found
            total[monotone] += 1
    assert total[True] > 300 and total[False] > 200
    assert hits[True] / total[True] >= MONOTONE_SHARE, hits[True] / total[True]
    assert hits[False] / total[False] >= REORDERED_SHARE, hits[False] / total[False]


@pytest.mark.slow
def test_translate_writes_alignments_and_plots(trained_run, tmp_path):
    from matplotlib.image import imread

    lines = ["three hundred forty two", "", "seven thousand"]
    plots = tmp_path / "plots"
    result = run_nmt(
        "translate",
        "--run-dir",
        str(trained_run),
        "--alignments",
        "--attention-plots",
        str(plots),
        input="".join(line + "\n" for line in lines),
    )
    rows = [line.split(" ||| ") for line in result.stdout.splitlines()]
    assert len(rows) == len(lines) and all(len(row) == 2 for row in rows)
    assert rows[1] == ["", ""]
    for source, (translation, links) in zip(lines, rows):
        pairs = [tuple(map(int, link.split("-"))) for link in links.split()]
        assert len(pairs) == len(translation.split())  # one link per target word
        assert all(0 <= i < len(source.split()) for i, _ in pairs)
        assert sorted(j for _, j in pairs) == list(range(len(translation.split())))
    assert sorted(p.name for p in plots.iterdir()) == ["0.png", "2.png"]  # none for the empty line
    for name in ("0.png", "2.png"):
        assert (plots / name).read_bytes()[:8] == PNG_SIGNATURE
        image = imread(plots / name)
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
