"""Word alignments and attention heat maps from a teacher-forced pass over a translation.

Attention weights are given per subword piece; users align whitespace words. A SentencePiece
piece that starts with "▁" opens a new word, so the pieces of a line map onto its words, and
the piece-level attention [T_t, T_s] becomes a word-level one [W_t, W_s] by summing each
source word's pieces (attention mass on the word) and averaging each target word's pieces. Each
target word is then linked to the source word it attends to most: the hard alignment that
Fairseq's `--print-alignment` and Marian's `--alignment` print, written in the Pharaoh format
"i-j" (0-based source word i, target word j), sorted by target word. The end-of-sentence step
aligns to no word.

Shapes: T_s source pieces, T_t target pieces (EOS last), W_s / W_t source / target words.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from nmt.atomic import atomic_write_bytes

WORD_START = "\u2581"  # SentencePiece's "▁", the space before a word


class Link(NamedTuple):
    """One alignment point: source word `source` is aligned with target word `target`."""

    source: int
    target: int


def word_indices(pieces: Sequence[str], words: int) -> list[int]:
    """The 0-based index of the whitespace word each piece belongs to.

    A piece that is "▁" alone (a space SentencePiece could not join to the next piece) stays
    with the word before it. Indices are capped at `words` - 1, so a normalization that joins
    or splits words differently from `str.split` still maps every piece onto a real word.

    Args:
        pieces: the pieces of one line, in order (no BOS/EOS).
        words: the number of whitespace words of the line (`len(line.split())`), > 0.
    """
    if words < 1:
        raise ValueError(f"`words` must be a positive integer, got {words}")
    index, new_word, out = -1, True, []
    for piece in pieces:
        if piece.startswith(WORD_START):
            new_word, piece = True, piece[len(WORD_START) :]
        if piece and (new_word or index < 0):
            index, new_word = index + 1, False
        out.append(min(max(index, 0), words - 1))
    return out


def word_attention(
    attention: np.ndarray, source_words: Sequence[int], target_words: Sequence[int]
) -> np.ndarray:
    """Piece attention [T_t, T_s] (without the EOS row) -> word attention [W_t, W_s].

    A source word gets the attention of all its pieces (summed); a target word the mean of
    its pieces' rows, so every row still sums to about 1.
    """
    n_source, n_target = max(source_words) + 1, max(target_words) + 1
    by_source = np.zeros((attention.shape[0], n_source), np.float64)
    np.add.at(by_source.T, np.asarray(source_words), attention.T)
    words = np.zeros((n_target, n_source), np.float64)
    np.add.at(words, np.asarray(target_words), by_source)
    counts = np.bincount(np.asarray(target_words), minlength=n_target)
    return words / np.maximum(counts, 1)[:, None]


def hard_alignment(
    attention: np.ndarray,
    source_pieces: Sequence[str],
    target_pieces: Sequence[str],
    source_text: str,
    target_text: str,
) -> list[Link]:
    """Word alignment links of one sentence pair from its piece-level attention.

    Args:
        attention: [T_t, T_s] attention of each target piece, or [T_t + 1, T_s] with the EOS
            step last (ignored).
        source_pieces: the T_s source pieces.
        target_pieces: the T_t target pieces.
        source_text: the source line, whose whitespace words the source indices count.
        target_text: the translation, whose whitespace words the target indices count.

    Returns:
        One link per target word, sorted by target word; none if either side has no words.
    """
    n_source, n_target = len(source_text.split()), len(target_text.split())
    if not n_source or not n_target or not source_pieces or not target_pieces:
        return []
    attention = np.asarray(attention)[: len(target_pieces), : len(source_pieces)]
    words = word_attention(
        attention,
        word_indices(source_pieces, n_source),
        word_indices(target_pieces, n_target),
    )
    return [Link(int(i), j) for j, i in enumerate(np.argmax(words, axis=1))]


def pharaoh(links: Sequence[Link]) -> str:
    """Links in the Pharaoh format: "0-0 1-2 2-1" (source-target, 0-based)."""
    return " ".join(f"{link.source}-{link.target}" for link in links)


def plot_attention(
    path: str | Path,
    attention: np.ndarray,
    source_pieces: Sequence[str],
    target_pieces: Sequence[str],
) -> None:
    """Writes a PNG heat map of a sentence's attention (target pieces down, source across).

    Drawn with matplotlib's Agg backend on a figure of its own, so it needs no display and
    leaves pyplot's global state alone; the file is written atomically.

    Args:
        path: the PNG file to write.
        attention: [T_t, T_s] weights; rows are the target pieces (EOS included).
        source_pieces: T_s labels for the columns.
        target_pieces: T_t labels for the rows.

    Raises:
        NmtError: matplotlib is not installed (the `plots` extra).
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        from nmt.errors import NmtError

        raise NmtError("--attention-plots needs matplotlib: pip install 'nmt[plots]'") from None
    rows, columns = len(target_pieces), len(source_pieces)
    # About a quarter inch per piece, so labels stay legible; capped for very long sentences.
    figure = Figure(figsize=(min(2 + 0.3 * columns, 40), min(1.5 + 0.3 * rows, 40)))
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    image = axes.imshow(np.asarray(attention), cmap="Greys", vmin=0.0, vmax=1.0, aspect="auto")
    axes.set_xticks(range(columns), list(source_pieces), rotation=90, fontsize=8)
    axes.set_yticks(range(rows), list(target_pieces), fontsize=8)
    axes.set_xlabel("source pieces")
    axes.set_ylabel("target pieces")
    figure.colorbar(image, ax=axes, fraction=0.04)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    atomic_write_bytes(path, buffer.getvalue())


class Aligned(NamedTuple):
    """A translated sentence's alignment and the attention it was read from."""

    links: list[Link]
    attention: np.ndarray  # [T_t + 1, T_s], EOS row last
    source_pieces: list[str]
    target_pieces: list[str]  # T_t pieces (EOS not included)


def align(decoder, sources: Sequence[str], targets: Sequence[str]) -> list[Aligned]:
    """Aligns each source with its translation by a teacher-forced pass over the translation.

    The translation is tokenized again, so its pieces are exactly the pieces of its words
    (the search's own pieces can differ in segmentation, not in text).

    Args:
        decoder: a `nmt.decoding.scoring.ForcedDecoder` for the model that translated.
        sources: source lines.
        targets: their translations (empty ones get no links).
    """
    tokenizer = decoder.tokenizer
    # Cut as the translation's source was (its warning has been given already).
    source_ids = [ids[: decoder.max_source_length] for ids in tokenizer.encode_source(sources)]
    target_ids = tokenizer.encode_target(targets)
    forced = decoder.run_ids(source_ids, target_ids)
    aligned = []
    for source, target, one, src_ids, tgt_ids in zip(
        sources, targets, forced, source_ids, target_ids
    ):
        source_pieces = tokenizer.source_pieces(src_ids)
        target_pieces = tokenizer.target_pieces(tgt_ids)
        links = hard_alignment(one.attention, source_pieces, target_pieces, source, target)
        aligned.append(Aligned(links, one.attention, source_pieces, target_pieces))
    return aligned


def annotate_batch(
    decoder,
    sources: Sequence[str],
    nbest: Sequence[Sequence],
    first_index: int,
    alignments: bool = True,
    plot_dir: str | Path | None = None,
) -> list[list[str]]:
    """Alignments of a translated batch, and its attention plots.

    Args:
        decoder: a `nmt.decoding.scoring.ForcedDecoder` for the translating model.
        sources: the batch's source lines.
        nbest: for each source, its hypotheses (objects with `.text`), best first.
        first_index: the 0-based input line number of `sources[0]` (plots are named by it).
        alignments: compute the Pharaoh links of every hypothesis.
        plot_dir: if given, write `<line index>.png` there for each non-empty source: the
            attention of its best translation.

    Returns:
        For each source, one Pharaoh string per hypothesis ("" when `alignments` is False).
    """
    per_source = [len(h) if alignments else 1 for h in nbest]
    pairs = [(s, hyp.text) for s, hyps, n in zip(sources, nbest, per_source) for hyp in hyps[:n]]
    aligned = iter(align(decoder, [p[0] for p in pairs], [p[1] for p in pairs]))
    out = []
    for offset, (source, n) in enumerate(zip(sources, per_source)):
        mine = [next(aligned) for _ in range(n)]
        if plot_dir is not None and source.strip():
            best = mine[0]
            plot_attention(
                Path(plot_dir) / f"{first_index + offset}.png",
                best.attention,
                best.source_pieces,
                [*best.target_pieces, "</s>"],
            )
        out.append([pharaoh(a.links) if alignments else "" for a in mine])
    return out
