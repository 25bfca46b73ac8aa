"""The training corpora, prepared once, as the padded batches of each epoch's plan.

`load_training_data` prepares (or reuses) every corpus of the config and reports what it holds;
`TrainingData.features` turns one planned batch into the model's inputs, reading only that
batch's pairs from the memory-mapped shards, so a worker reads its own share and nothing else.

Shapes: B batch, T_s source time, T_t target time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from nmt.config import Config
from nmt.constants import BOS_ID, EOS_ID, PAD_ID
from nmt.data.epoch_plan import Batching, CorpusLengths, EpochPlan, plan_epoch, usable_lines
from nmt.data.prepared import PreparedCorpus, describe, open_prepared_or_fail, prepare_corpus
from nmt.data.tokenizer import Tokenizer
from nmt.errors import NmtError

PREPARED = "prepared"  # the run directory's folder of prepared corpora, by default


class Features(NamedTuple):
    """One batch as the model takes it, int32, right-padded with PAD_ID."""

    source: np.ndarray  # [B, T_s]
    target_in: np.ndarray  # [B, T_t]: BOS y
    target_out: np.ndarray  # [B, T_t]: y EOS


def prepared_folder(config: Config, run_dir: Path) -> Path:
    """`data.prepared_dir`, else RUN/prepared."""
    return Path(config.data.prepared_dir) if config.data.prepared_dir else run_dir / PREPARED


class TrainingData:
    """The prepared corpora of a run and how its batches are made from them."""

    def __init__(
        self,
        corpora: Sequence[PreparedCorpus],
        tag_ids: Sequence[int | None],
        batching: Batching,
        seed: int,
        tokenizer: Tokenizer,
        sampling_alpha: float = 0.0,
    ):
        self.corpora = list(corpora)
        self.tag_ids = list(tag_ids)
        self.batching = batching
        self.seed = seed
        self.tokenizer = tokenizer
        self.sampling_alpha = sampling_alpha
        self._lengths = [
            CorpusLengths(c.lengths(), c.corpus.weight, tag is not None)
            for c, tag in zip(self.corpora, self.tag_ids)
        ]

    @property
    def several(self) -> bool:
        return len(self.corpora) > 1

    def plan(self, epoch: int) -> EpochPlan:
        """Epoch `epoch`'s batches (0-based), the same for every worker and rerun."""
        return plan_epoch(self._lengths, self.batching, self.seed, epoch)

    def usable(self) -> list[int]:
        """Pairs of each corpus that training can use (non-empty, within the limits)."""
        return [len(usable_lines(lengths, self.batching)) for lengths in self._lengths]

    def features(self, corpus: np.ndarray, line: np.ndarray, key: int = 0) -> Features:
        """The padded batch of the given (corpus, line) pairs.

        Args:
            corpus, line: int arrays [B], as in an `EpochPlan` batch.
            key: a number unique to this batch in the epoch (its first entry in the plan):
                with subword sampling, its segmentations are drawn with (seed, key), so a
                resumed run, on any number of replicas, sees the same pieces.
        """
        if self.sampling_alpha > 0:
            source, target = self._sampled(corpus, line, key)
        else:
            source, target = self._read(corpus, line)
        rows = np.arange(len(line))
        lengths = (target != PAD_ID).sum(axis=1)
        target_in = np.concatenate([np.full((len(line), 1), BOS_ID, np.int32), target[:, :-1]], 1)
        target_out = target.copy()
        target_out[rows, lengths] = EOS_ID
        return Features(source, target_in, target_out)

    def _read(self, corpus: np.ndarray, line: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Source [B, T_s] (tag first, where the corpus has one) and target [B, T_t + 1],
        gathered from the shards in one indexing operation per corpus and side."""
        spans = {}
        several = self.several
        for index in np.unique(corpus) if several else [0]:
            rows = np.flatnonzero(corpus == index) if several else np.arange(len(line))
            offsets = self.corpora[index].offsets
            starts = np.asarray(offsets[line[rows]])
            spans[index] = rows, starts, np.asarray(offsets[line[rows] + 1]) - starts
        shift = {index: int(self.tag_ids[index] is not None) for index in spans}
        source_width = max(int(n[:, 0].max()) + shift[i] for i, (_, _, n) in spans.items())
        target_width = max(int(n[:, 1].max()) for _, _, n in spans.values()) + 1
        source = np.zeros((len(line), source_width), np.int32)
        target = np.zeros((len(line), target_width), np.int32)
        for index, (rows, starts, lengths) in spans.items():
            prepared = self.corpora[index]
            source[rows] = _gather(
                prepared.source_ids, starts[:, 0], lengths[:, 0], source_width, shift[index]
            )
            if shift[index]:
                source[rows, 0] = self.tag_ids[index]
            target[rows] = _gather(prepared.target_ids, starts[:, 1], lengths[:, 1], target_width)
        return source, target

    def _sampled(self, corpus: np.ndarray, line: np.ndarray, key: int):
        """Subword regularization (Kudo, 2018): segmentations drawn anew from the text with the
        seed (training seed, key); a draw past the length limits keeps the best segmentation."""
        best_source, best_target = self._read(corpus, line)
        sources, targets = [], []
        b = self.batching
        for index in np.unique(corpus):
            rows = np.flatnonzero(corpus == index)
            seed = int(np.random.SeedSequence([self.seed, key, int(index)]).generate_state(1)[0])
            texts = self.corpora[index].texts(line[rows])
            tag = self.tag_ids[index]
            drawn = self.tokenizer.sample(*texts, self.sampling_alpha, seed)
            for row, source, target in zip(rows, *drawn):
                fits = source and target and len(target) <= b.max_target_length
                if fits and len(source) + (tag is not None) <= b.max_source_length:
                    sources.append((row, [tag] + source if tag is not None else source))
                    targets.append((row, target))
                else:
                    sources.append((row, _unpadded(best_source[row])))
                    targets.append((row, _unpadded(best_target[row])))
        order = np.argsort([row for row, _ in sources], kind="stable")
        return (
            _pad([sources[i][1] for i in order], 0),
            _pad([targets[i][1] for i in order], 1),
        )


def _gather(ids: np.ndarray, starts: np.ndarray, lengths: np.ndarray, width: int, shift=0):
    """Rows of `width` ids: row i holds ids[starts[i] : starts[i] + lengths[i]] from column
    `shift` on, PAD_ID elsewhere."""
    columns = np.arange(width)
    index = starts[:, None] + (columns - shift)[None, :]
    inside = (columns >= shift)[None, :] & (columns[None, :] < (lengths + shift)[:, None])
    np.clip(index, 0, max(len(ids) - 1, 0), out=index)
    return np.where(inside, ids[index] if len(ids) else 0, PAD_ID).astype(np.int32)


def _unpadded(row: np.ndarray) -> np.ndarray:
    return row[row != PAD_ID]


def _pad(rows: Sequence[np.ndarray], extra: int) -> np.ndarray:
    """[B, longest + extra] int32, right-padded with PAD_ID."""
    width = max((len(row) for row in rows), default=0) + extra
    out = np.full((len(rows), width), PAD_ID, np.int32)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def load_training_data(
    config: Config,
    tokenizer: Tokenizer,
    folder: Path,
    log: Callable[[str], None],
    prepare: bool = True,
) -> TrainingData:
    """Prepares (or reuses) every training corpus in `folder` and says what they hold.

    Args:
        prepare: False to only open what another process (the chief worker) prepared.

    Raises:
        NmtError: no corpus, a bad file or shard (naming it), a tag the tokenizer lacks, or
            (`prepare` False) a corpus not prepared yet.
    """
    d = config.data
    if not d.corpora:
        raise NmtError(
            "the config names no training data: set data.train_source and "
            "data.train_target, or data.train"
        )
    prepared, tag_ids = [], []
    for corpus in d.corpora:
        tag = tokenizer.source_piece_id(corpus.tag) if corpus.tag else None
        if corpus.tag and tag is None:
            raise NmtError(
                f"data.train: the tag {corpus.tag!r} of {corpus.label} is not a piece of the "
                "tokenizer; a tokenizer nmt trains learns every tag of data.train, a reused "
                "tokenizer.model must have it as a user-defined symbol"
            )
        text = d.sampling_alpha > 0
        threads = config.tokenizer.threads or -1
        place = folder / corpus.label
        if prepare:
            prepared.append(prepare_corpus(corpus, place, tokenizer, text, threads, log))
        else:
            prepared.append(open_prepared_or_fail(corpus, place, tokenizer, text))
        tag_ids.append(tag)
    batching = Batching(
        d.max_source_length,
        d.max_target_length,
        d.batch_size,
        d.batch_tokens,
        d.bucket_width,
        d.shuffle_buffer,
    )
    data = TrainingData(
        prepared, tag_ids, batching, config.training.seed, tokenizer, d.sampling_alpha
    )
    for corpus, usable in zip(prepared, data.usable()):
        nonempty = corpus.pairs - corpus.manifest["empty"]
        log(
            f"{describe(corpus)}; {nonempty - usable:,} over the length limits "
            f"({d.max_source_length}/{d.max_target_length} pieces); {usable:,} used, "
            f"weight {corpus.corpus.weight:g}"
            + (f", tagged {corpus.corpus.tag}" if corpus.corpus.tag else "")
        )
    if not sum(data.usable()):
        raise NmtError(
            "no training pairs survive the length filter (data.max_source_length / "
            "data.max_target_length) or they are all empty: "
            + ", ".join(c.corpus.source for c in prepared)
        )
    return data
