"""Lexical shortlist: search over the target pieces likely for a batch, not the whole vocabulary.

Marian's lexical shortlist (Junczys-Dowmunt et al., 2018, "Marian: Cost-effective high-quality
neural machine translation in C++"): on a CPU most of a decoding step is the vocabulary-wide
output projection, softmax and top-k, while a batch's translations draw on few pieces. A batch's
candidates are the special ids, the `frequent` most common target pieces, and for every source
piece in the batch the `per_source` target pieces that co-occur with it most in the training
pairs (ranked by the Dice coefficient of the sentences they occur in). Probabilities are
normalised over the candidates only, so scores and, rarely, translations differ from the full
search; `nmt evaluate --shortlist` measures by how much.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from nmt.atomic import atomic_write_bytes
from nmt.constants import EOS_ID
from nmt.errors import NmtError

SPECIAL_IDS = EOS_ID + 1  # PAD, UNK, BOS, EOS: kept at their own indices among the candidates


class Shortlist(NamedTuple):
    """Per source piece, its likeliest target pieces; and the most frequent target pieces."""

    table: np.ndarray  # [source vocabulary, per_source] int32 target ids, best first
    frequent: np.ndarray  # [frequent] int32 target ids, most frequent first

    def save(self, path: str | Path) -> None:
        """Writes the shortlist as .npz, atomically (a kill leaves the old file or none)."""
        data = io.BytesIO()
        np.savez(data, table=self.table, frequent=self.frequent)
        atomic_write_bytes(path, data.getvalue())

    @classmethod
    def load(cls, path: str | Path, source_vocab_size: int | None = None) -> Shortlist:
        """Reads a file `save` wrote.

        Raises:
            NmtError: the file is missing, not a shortlist, or built for another vocabulary.
        """
        try:
            with np.load(path) as data:
                shortlist = cls(data["table"].astype(np.int32), data["frequent"].astype(np.int32))
        except (OSError, ValueError, KeyError) as error:
            raise NmtError(
                f"{path}: not a shortlist ({error}); build one with `nmt shortlist --run-dir RUN`"
            ) from None
        if source_vocab_size is not None and len(shortlist.table) != source_vocab_size:
            raise NmtError(
                f"{path}: built for a source vocabulary of {len(shortlist.table)} pieces, the "
                f"model has {source_vocab_size}; build it from this run with `nmt shortlist`"
            )
        return shortlist

    def candidates(self, source: tf.Tensor) -> tf.Tensor:
        """source [B, T_s] piece ids -> [V'] the batch's candidate target ids, sorted, with the
        special ids first at their own indices (so EOS is EOS among the candidates too)."""
        found = tf.reshape(tf.gather(tf.constant(self.table), source), [-1])
        specials = tf.range(SPECIAL_IDS, dtype=tf.int32)
        unique, _ = tf.unique(tf.concat([specials, tf.constant(self.frequent), found], 0))
        return tf.concat([specials, tf.sort(unique[SPECIAL_IDS:])], 0)


def build_shortlist(
    source_ids: Sequence[Sequence[int]],
    target_ids: Sequence[Sequence[int]],
    source_vocab_size: int,
    target_vocab_size: int,
    per_source: int = 50,
    frequent: int = 100,
) -> Shortlist:
    """Counts which target pieces occur in the sentences of which source pieces.

    Args:
        source_ids, target_ids: the training pairs as piece ids (no BOS/EOS).
        per_source: target pieces kept per source piece, by Dice coefficient
            2 c(s, t) / (c(s) + c(t)) over sentence counts (ties: more co-occurrences first).
        frequent: target pieces every batch may use, the most frequent by sentence count.
    """
    source_df = np.zeros(source_vocab_size, np.int64)
    target_df = np.zeros(target_vocab_size, np.int64)
    codes = []
    for source, target in zip(source_ids, target_ids, strict=True):
        s = np.unique(np.asarray(source, np.int64))
        t = np.unique(np.asarray(target, np.int64))
        source_df[s] += 1
        target_df[t] += 1
        codes.append((s[:, None] * target_vocab_size + t[None, :]).ravel())
    pairs, counts = np.unique(
        np.concatenate(codes) if codes else np.zeros(0, np.int64), return_counts=True
    )
    s, t = np.divmod(pairs, target_vocab_size)
    dice = 2.0 * counts / (source_df[s] + target_df[t])
    order = np.lexsort((-counts, -dice, s))  # by source piece, then best first
    s, t = s[order], t[order]
    first = np.searchsorted(s, s)  # where each source piece's run starts
    rank = np.arange(len(s)) - first
    keep = rank < per_source
    # Unused slots repeat EOS, a candidate anyway.
    table = np.full((source_vocab_size, per_source), EOS_ID, np.int32)
    table[s[keep], rank[keep]] = t[keep]
    most_frequent = np.argsort(-target_df, kind="stable")[:frequent].astype(np.int32)
    return Shortlist(table, most_frequent)
