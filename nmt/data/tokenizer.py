"""SentencePiece subword tokenizer (Kudo and Richardson, 2018) with the fixed ids of `constants`.

One joint model for both languages by default (`spm.model`), or `source.model` and `target.model`.
The model files are written atomically into the run directory's `tokenizer/` folder.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import shutil
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import sentencepiece as spm

from nmt.atomic import atomic_write_bytes
from nmt.constants import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from nmt.data.text import read_lines
from nmt.errors import NmtError
from nmt.threads import cores

if TYPE_CHECKING:
    from nmt.config import Config

JOINT_MODEL = "spm.model"
SOURCE_MODEL = "source.model"
TARGET_MODEL = "target.model"
# segmentations a subword-sampling draw chooses among (Kudo 2018: l = 64)
SAMPLING_NBEST = 64


class Tokenizer:
    """Turns text into piece ids and back, for the source and the target side."""

    def __init__(self, source: spm.SentencePieceProcessor, target: spm.SentencePieceProcessor):
        self._source = source
        self._target = target

    @classmethod
    def load(cls, directory: str | Path) -> Tokenizer:
        """Loads the tokenizer written by `train_tokenizer` into `directory`.

        Raises:
            NmtError: no model file there, or a file that SentencePiece cannot read.
        """
        directory = Path(directory)
        if (directory / JOINT_MODEL).is_file():
            joint = _load_model(directory / JOINT_MODEL)
            return cls(joint, joint)
        if (directory / SOURCE_MODEL).is_file() and (directory / TARGET_MODEL).is_file():
            return cls(_load_model(directory / SOURCE_MODEL), _load_model(directory / TARGET_MODEL))
        raise NmtError(
            f"{directory}: no tokenizer model ({JOINT_MODEL} or {SOURCE_MODEL} + "
            f"{TARGET_MODEL}); train one with `nmt train`"
        )

    @property
    def source_vocab_size(self) -> int:
        return self._source.get_piece_size()

    @property
    def target_vocab_size(self) -> int:
        return self._target.get_piece_size()

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the model(s): prepared data made with another tokenizer is refused."""
        digest = hashlib.sha256(self._source.serialized_model_proto())
        if self._target is not self._source:
            digest.update(self._target.serialized_model_proto())
        return digest.hexdigest()

    def source_piece_id(self, piece: str) -> int | None:
        """The id of a whole source piece (a corpus tag, say), or None if it is not one."""
        index = self._source.piece_to_id(piece)
        return None if index == UNK_ID and piece != self._source.id_to_piece(UNK_ID) else index

    def encode_source(self, texts: Sequence[str], threads: int = -1) -> list[list[int]]:
        """Source piece ids, without BOS/EOS (`threads`: SentencePiece's, -1 its default)."""
        return self._source.encode(list(texts), num_threads=threads)

    def encode_target(self, texts: Sequence[str], threads: int = -1) -> list[list[int]]:
        """Target piece ids, without BOS/EOS (the pipeline adds them)."""
        return self._target.encode(list(texts), num_threads=threads)

    def sample(
        self, sources: Sequence[str], targets: Sequence[str], alpha: float, seed: int
    ) -> tuple[list[list[int]], list[list[int]]]:
        """Piece ids of both sides, each sentence segmented by a seeded draw among its
        `SAMPLING_NBEST` best segmentations, weighted P(x) ** alpha (subword regularization,
        Kudo 2018, with l = 64).

        Not SentencePiece's own sampler: its draws (0.2.3) differ from process to process
        under the same seed, and a resumed run must see the same pieces. Unigram models only.

        Args:
            sources, targets: texts of the two sides (any lengths).
            alpha: smoothing of the segmentation probabilities (Kudo: 0.1 with l = 64).
            seed: seed of the draws.

        Returns:
            The source and the target piece ids, without BOS/EOS.
        """
        rng = np.random.default_rng(seed)
        return (
            _sample_segmentations(self._source, sources, alpha, rng),
            _sample_segmentations(self._target, targets, alpha, rng),
        )

    def decode_target(self, ids: Sequence[Sequence[int]]) -> list[str]:
        """Detokenized text for each id sequence (special ids are dropped)."""
        return self._target.decode([[int(i) for i in seq] for seq in ids])

    def target_pieces(self, ids: Sequence[int]) -> list[str]:
        """The pieces of one id sequence, for debugging and n-best output."""
        return [self._target.id_to_piece(int(i)) for i in ids]

    def source_pieces(self, ids: Sequence[int]) -> list[str]:
        """The source pieces of one id sequence, for word alignments and attention plots."""
        return [self._source.id_to_piece(int(i)) for i in ids]


def _sample_segmentations(
    processor: spm.SentencePieceProcessor,
    texts: Sequence[str],
    alpha: float,
    rng: np.random.Generator,
) -> list[list[int]]:
    """One of each text's n best segmentations, drawn with probability proportional to
    exp(alpha * log P(x)), by the Gumbel-max trick over all candidates at once."""
    candidates = processor.nbest_encode(list(texts), nbest_size=SAMPLING_NBEST)
    flat = [segmentation for options in candidates for segmentation in options]
    if not flat:
        return [[] for _ in texts]
    piece_scores = np.array(
        [processor.get_score(i) for i in range(processor.get_piece_size())], np.float64
    )
    lengths = np.array([len(segmentation) for segmentation in flat])
    ids = np.fromiter(itertools.chain.from_iterable(flat), np.int64, int(lengths.sum()))
    ends = np.cumsum(lengths)
    running = np.concatenate([[0.0], np.cumsum(piece_scores[ids])])
    log_p = running[ends] - running[ends - lengths]
    keys = alpha * log_p + rng.gumbel(size=len(flat))
    picked, offset = [], 0
    for options in candidates:
        if options:
            picked.append(options[int(np.argmax(keys[offset : offset + len(options)]))])
        else:
            picked.append([])
        offset += len(options)
    return picked


def _load_model(path: Path) -> spm.SentencePieceProcessor:
    processor = spm.SentencePieceProcessor()
    try:
        processor.load(str(path))
    except (OSError, RuntimeError) as error:
        raise NmtError(f"{path}: not a readable SentencePiece model ({error})") from None
    if processor.pad_id() != PAD_ID or processor.eos_id() != EOS_ID:
        raise NmtError(
            f"{path}: SentencePiece model with other special ids than nmt's "
            f"(pad={PAD_ID}, unk={UNK_ID}, bos={BOS_ID}, eos={EOS_ID})"
        )
    return processor


def _non_empty(lines: Iterable[str]) -> Iterator[str]:
    return (line for line in lines if line.strip())


def _train_model(
    sentences: Iterator[str],
    vocab_size: int,
    model_type: str,
    character_coverage: float,
    byte_fallback: bool,
    max_sentences: int,
    user_symbols: Sequence[str],
    threads: int,
) -> bytes:
    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=sentences,
            model_writer=model,
            vocab_size=vocab_size,
            model_type=model_type,
            character_coverage=character_coverage,
            byte_fallback=byte_fallback,
            pad_id=PAD_ID,
            unk_id=UNK_ID,
            bos_id=BOS_ID,
            eos_id=EOS_ID,
            hard_vocab_limit=False,  # a small corpus gets a smaller vocabulary, not an error
            input_sentence_size=max_sentences,
            shuffle_input_sentence=True,
            # each tag (e.g. <bt>) is one piece, never split
            user_defined_symbols=list(user_symbols),
            num_threads=threads or cores(),
            minloglevel=2,
        )
    except RuntimeError as error:
        raise NmtError(f"SentencePiece training failed: {error}") from None
    return model.getvalue()


def train_tokenizer(
    source_files: Sequence[str | Path],
    target_files: Sequence[str | Path],
    directory: str | Path,
    vocab_size: int = 8000,
    model_type: str = "unigram",
    joint: bool = True,
    character_coverage: float = 1.0,
    byte_fallback: bool = False,
    max_training_sentences: int = 2_000_000,
    user_symbols: Sequence[str] = (),
    threads: int = 0,
) -> Tokenizer:
    """Trains SentencePiece on the training files and saves it in `directory`.

    Args:
        source_files: source-side text files (plain or .gz).
        target_files: target-side text files.
        directory: where the model files are written (atomically).
        vocab_size: pieces per model (an upper bound when the corpus is small).
        model_type: "unigram" or "bpe".
        joint: one model trained on both sides, or one model per side.
        character_coverage: share of characters covered by single-character pieces.
        byte_fallback: encode characters outside the vocabulary as UTF-8 byte pieces.
        max_training_sentences: sentences sampled for each model (from both sides together
            for a joint model).
        user_symbols: pieces kept whole, such as corpus tags.
        threads: SentencePiece's training threads (0: every core).

    Returns:
        The loaded tokenizer.
    """
    directory = Path(directory)

    def lines(files: Sequence[str | Path]) -> Iterator[str]:
        return _non_empty(itertools.chain.from_iterable(read_lines(f) for f in files))

    options = dict(
        vocab_size=vocab_size,
        model_type=model_type,
        character_coverage=character_coverage,
        byte_fallback=byte_fallback,
        max_sentences=max_training_sentences,
        threads=threads,
    )
    if joint:
        data = _train_model(
            itertools.chain(lines(source_files), lines(target_files)),
            user_symbols=user_symbols,
            **options,
        )
        atomic_write_bytes(directory / JOINT_MODEL, data)
    else:
        source = _train_model(lines(source_files), user_symbols=user_symbols, **options)
        atomic_write_bytes(directory / SOURCE_MODEL, source)
        target = _train_model(lines(target_files), user_symbols=(), **options)
        atomic_write_bytes(directory / TARGET_MODEL, target)
    return Tokenizer.load(directory)


def prepare_tokenizer(config: Config, directory: Path, log: Callable[[str], None]) -> Tokenizer:
    """Loads the tokenizer in `directory`, training it from the config's training files the first
    time. Here rather than in the trainer so that recipes can train one without TensorFlow."""
    if directory.is_dir():
        try:
            return Tokenizer.load(directory)
        except NmtError:  # incomplete (killed between two model files): train it again
            pass
    t = config.tokenizer
    if t.model:
        log(f"tokenizer: using {t.model}")
        return copy_tokenizer(Path(t.model), directory)
    log(f"training the SentencePiece tokenizer ({t.model_type}, {t.vocab_size} pieces)")
    corpora = config.data.corpora
    return train_tokenizer(
        [corpus.source for corpus in corpora],
        [corpus.target for corpus in corpora],
        directory,
        vocab_size=t.vocab_size,
        model_type=t.model_type,
        joint=t.joint,
        character_coverage=t.character_coverage,
        byte_fallback=t.byte_fallback,
        max_training_sentences=t.max_training_sentences,
        user_symbols=config.data.tags,
        threads=t.threads,
    )


def copy_tokenizer(model: Path, directory: Path) -> Tokenizer:
    """Copies an existing tokenizer into a run: a SentencePiece model file becomes the joint
    model, a tokenizer folder (another run's) is copied as it is.

    Raises:
        NmtError: `model` is neither, or SentencePiece cannot read it.
    """
    if model.is_dir():
        Tokenizer.load(model)  # refuse a folder without a tokenizer before copying anything
        names = [JOINT_MODEL] if (model / JOINT_MODEL).is_file() else [SOURCE_MODEL, TARGET_MODEL]
        sources = [(model / name, name) for name in names]
    elif model.is_file():
        _load_model(model)
        sources = [(model, JOINT_MODEL)]
    else:
        raise NmtError(f"tokenizer.model: {model}: no such file or folder")
    staging = directory.with_name(f".{directory.name}.copy")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for path, name in sources:
        atomic_write_bytes(staging / name, path.read_bytes())
    shutil.rmtree(directory, ignore_errors=True)  # an incomplete earlier copy
    staging.rename(directory)
    return Tokenizer.load(directory)
