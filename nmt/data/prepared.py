"""Prepared corpora: each training corpus checked and tokenized once, into memory-mapped shards.

Re-tokenizing the text every epoch cost a 2,000,000-pair corpus 184 s per epoch on the 2-core
machine; read from a prepared corpus, an epoch's batches are a gather from memory. One folder per
corpus, inside `data.prepared_dir` (default RUN/prepared):

    NAME/manifest.json      what the shards were made from and what preparing found (below)
    NAME/source.ID.bin      the source piece ids of every line, one line after the other
    NAME/target.ID.bin      the same for the target side
    NAME/offsets.ID.bin     int64 [N + 1, 2]: where line i starts in the source and target ids
    NAME/text.ID.bin        (subword sampling only) the UTF-8 text of both sides, and
    NAME/text_offsets.ID.bin  its int64 [N + 1, 2] offsets: sampling segments the text anew

Every line is kept, empty ones too (with length 0), so pair i is line i of the files; the epoch
plan (nmt/data/epoch_plan.py) leaves out empty and overlong pairs, so one prepared corpus serves
runs with other length limits. The manifest names the shard files by a fresh ID and is written
last, atomically: a kill at any moment leaves the previous complete preparation in force. It
records the inputs' sizes, modification times and SHA-256, and the tokenizer's fingerprint: a
changed input is prepared again, a shard of another tokenizer or of the wrong size is refused.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import itertools
import json
import os
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np

from nmt.atomic import atomic_write_text
from nmt.config import CorpusConfig
from nmt.constants import UNK_ID
from nmt.data.text import read_lines
from nmt.data.tokenizer import Tokenizer
from nmt.errors import NmtError
from nmt.progress import progress_bar

FORMAT = 1
MANIFEST = "manifest.json"
_CHUNK = 8192  # lines tokenized in one SentencePiece call (its threads share them)


class PreparedCorpus(NamedTuple):
    """One corpus's shards, memory-mapped: nothing is read until a batch asks for it."""

    corpus: CorpusConfig
    folder: Path
    manifest: dict
    source_ids: np.ndarray  # [pieces] uint16 or int32
    target_ids: np.ndarray
    offsets: np.ndarray  # int64 [N + 1, 2]
    text: np.ndarray | None  # uint8 [bytes], with subword sampling
    text_offsets: np.ndarray | None  # int64 [N + 1, 2]

    @property
    def pairs(self) -> int:
        return len(self.offsets) - 1

    def lengths(self) -> np.ndarray:
        """Pieces per line, int32 [N, 2] (source, target): half the memory of int64, which
        every epoch plan's arrays follow."""
        lengths = np.empty((self.pairs, 2), np.int32)
        np.subtract(self.offsets[1:], self.offsets[:-1], out=lengths, casting="unsafe")
        return lengths

    def texts(self, lines: np.ndarray) -> tuple[list[str], list[str]]:
        """The source and target text of the given lines (subword sampling reads them)."""
        if self.text is None:
            raise NmtError(f"{self.folder} was prepared without text; prepare it again")
        # Row i + 1 holds where line i's source and target text end; the target follows the source.
        starts, ends = self.text_offsets[lines, 1], self.text_offsets[lines + 1]
        text = self.text
        sources = [bytes(text[a:b]).decode("utf-8") for a, b in zip(starts, ends[:, 0])]
        targets = [bytes(text[a:b]).decode("utf-8") for a, b in zip(ends[:, 0], ends[:, 1])]
        return sources, targets


class _Stale(Exception):
    """The shards were made from other inputs: prepare again."""


def file_record(path: Path) -> dict:
    """Size, modification time and SHA-256 of an input file."""
    if not path.is_file():
        raise NmtError(f"{path}: no such file")
    stat = path.stat()
    return {
        "path": str(path),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "sha256": _sha256(path),
    }


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _unchanged(record: dict, path: Path) -> bool:
    """Same size and time as when prepared; a touched file counts as unchanged if its content
    hashes the same (hashing a large corpus takes seconds, so only then)."""
    try:
        stat = path.stat()
    except OSError:
        raise NmtError(f"{path}: no such file") from None
    if stat.st_size != record["size"]:
        return False
    return stat.st_mtime_ns == record["mtime_ns"] or _sha256(path) == record["sha256"]


def open_prepared(corpus: CorpusConfig, folder: Path, tokenizer: Tokenizer, text: bool):
    """The prepared shards of `corpus` in `folder`.

    Raises:
        _Stale: nothing prepared there yet, the inputs changed, or text is needed and missing.
        NmtError: another tokenizer prepared it, or a shard is truncated or unreadable.
    """
    path = folder / MANIFEST
    if not path.is_file():
        raise _Stale
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        files, dtype = manifest["files"], np.dtype(manifest["dtype"])
    except (ValueError, KeyError, TypeError) as error:
        raise NmtError(f"{path}: unreadable ({error}); delete {folder} to prepare again") from None
    if manifest.get("format") != FORMAT:
        raise _Stale
    if manifest["tokenizer"] != tokenizer.fingerprint:
        raise NmtError(
            f"{folder} was prepared with another tokenizer (fingerprint "
            f"{manifest['tokenizer'][:12]}, this run's {tokenizer.fingerprint[:12]}); set "
            "data.prepared_dir to another folder, or delete this one to prepare it again"
        )
    for side in ("source", "target"):
        if Path(manifest[side]["path"]) != Path(getattr(corpus, side)).resolve() or not _unchanged(
            manifest[side], Path(getattr(corpus, side))
        ):
            raise _Stale
    if text and "text" not in files:
        raise _Stale
    arrays = {}
    for kind, name in files.items():
        shard = folder / name["file"]
        size = shard.stat().st_size if shard.is_file() else -1
        if size != name["bytes"]:
            raise NmtError(
                f"{shard}: {'missing' if size < 0 else f'{size:,} bytes'}, the manifest says "
                f"{name['bytes']:,}: a truncated or damaged shard. Delete {folder} to prepare again"
            )
        kind_dtype = np.uint8 if kind == "text" else np.int64 if "offsets" in kind else dtype
        shape = (-1, 2) if "offsets" in kind else (-1,)
        # A plain view of the mapping: np.memmap's own indexing costs microseconds per call.
        arrays[kind] = (
            np.asarray(np.memmap(shard, kind_dtype, "r")).reshape(shape)
            if size
            else np.zeros(0, kind_dtype).reshape(shape)
        )
    return PreparedCorpus(
        corpus,
        folder,
        manifest,
        arrays["source"],
        arrays["target"],
        arrays["offsets"],
        arrays.get("text"),
        arrays.get("text_offsets"),
    )


def open_prepared_or_fail(
    corpus: CorpusConfig, folder: Path, tokenizer: Tokenizer, text: bool
) -> PreparedCorpus:
    """`open_prepared`, for a reader that must not prepare (tools, non-chief workers).

    Raises:
        NmtError: not prepared, or prepared from other inputs.
    """
    try:
        return open_prepared(corpus, folder, tokenizer, text)
    except _Stale:
        raise NmtError(
            f"{folder}: {corpus.label} is not prepared (or its files changed since): run "
            "`nmt prepare` or `nmt train` first"
        ) from None


def prepare_corpus(
    corpus: CorpusConfig,
    folder: Path,
    tokenizer: Tokenizer,
    text: bool,
    threads: int,
    log: Callable[[str], None],
) -> PreparedCorpus:
    """The corpus's prepared shards: reused when up to date, else (re)made.

    Several processes may ask at once (two runs sharing `data.prepared_dir`): a lock file lets
    one prepare while the others wait, then read what it wrote.

    Raises:
        NmtError: a missing or unreadable file, invalid UTF-8 or files of different lengths
            (naming file and line), or shards of another tokenizer.
    """
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            prepared = open_prepared(corpus, folder, tokenizer, text)
            log(f"data: {corpus.label}: prepared corpus in {folder} is up to date")
            return prepared
        except _Stale:
            pass
        _write_shards(corpus, folder, tokenizer, text, threads, log)
        return open_prepared(corpus, folder, tokenizer, text)


def _lines_of(corpus: CorpusConfig) -> Iterator[tuple[str, str]]:
    """The pairs of two parallel files; files of different lengths name both line counts."""
    missing = object()
    count = 0
    sources, targets = read_lines(corpus.source), read_lines(corpus.target)
    for source, target in itertools.zip_longest(sources, targets, fillvalue=missing):
        if source is missing or target is missing:
            longer, shorter = (corpus.source, corpus.target)
            rest = sources
            if source is missing:
                longer, shorter, rest = corpus.target, corpus.source, targets
            extra = 1 + sum(1 for _ in rest)
            raise NmtError(
                f"parallel files differ in length: {longer} has {count + extra:,} lines, "
                f"{shorter} has {count:,}"
            )
        count += 1
        yield source, target


class _ShardWriter:
    """Appends one side's ids (and text) to files under temporary names, then names them."""

    def __init__(self, folder: Path, dtype: np.dtype, text: bool):
        self.folder, self.dtype, self.id = folder, dtype, secrets.token_hex(4)
        kinds = ["source", "target", "offsets"] + (["text", "text_offsets"] if text else [])
        self.paths = {kind: folder / f".{kind}.{self.id}.bin.tmp" for kind in kinds}
        self.streams = {kind: open(path, "wb") for kind, path in self.paths.items()}  # noqa: SIM115
        self.ends = np.zeros(2, np.int64)
        self.text_ends = np.zeros(2, np.int64)
        self.streams["offsets"].write(self.ends.tobytes())
        if text:
            self.streams["text_offsets"].write(self.text_ends.tobytes())

    def add(self, ids: list[list[list[int]]], texts: list[list[str]]) -> None:
        lengths = []
        for side, side_ids in zip(("source", "target"), ids):
            counts = np.fromiter(map(len, side_ids), np.int64, len(side_ids))
            flat = np.fromiter(itertools.chain.from_iterable(side_ids), self.dtype, counts.sum())
            self.streams[side].write(flat.tobytes())
            lengths.append(counts)
        ends = self.ends + np.cumsum(np.stack(lengths, axis=1), axis=0)
        self.streams["offsets"].write(ends.tobytes())
        self.ends = ends[-1]
        if "text" in self.streams:
            encoded = [[line.encode("utf-8") for line in side] for side in texts]
            sizes = np.stack([np.fromiter(map(len, side), np.int64) for side in encoded], axis=1)
            # One text file: line i's source, then its target; a row holds where each ends.
            pair_ends = self.text_ends[1] + np.cumsum(sizes.sum(axis=1))
            rows = np.stack([pair_ends - sizes[:, 1], pair_ends], axis=1)
            self.streams["text"].write(b"".join(itertools.chain.from_iterable(zip(*encoded))))
            self.streams["text_offsets"].write(rows.tobytes())
            self.text_ends = rows[-1]

    def finish(self) -> dict:
        """Syncs and names the files; returns the manifest's "files" entry."""
        files = {}
        for kind, stream in self.streams.items():
            stream.flush()
            os.fsync(stream.fileno())
            stream.close()
            final = self.folder / f"{kind}.{self.id}.bin"
            os.replace(self.paths[kind], final)
            files[kind] = {"file": final.name, "bytes": final.stat().st_size}
        return files

    def discard(self) -> None:
        for kind, stream in self.streams.items():
            stream.close()
            self.paths[kind].unlink(missing_ok=True)


def _write_shards(
    corpus: CorpusConfig,
    folder: Path,
    tokenizer: Tokenizer,
    text: bool,
    threads: int,
    log: Callable[[str], None],
) -> None:
    """Reads, checks and tokenizes the corpus once into new shards, then the manifest."""
    log(f"data: {corpus.label}: preparing {corpus.source} + {corpus.target} into {folder}")
    # Hash first: a file that changes while it is read is then seen as changed next time.
    records = [file_record(Path(corpus.source)), file_record(Path(corpus.target))]
    vocab = max(tokenizer.source_vocab_size, tokenizer.target_vocab_size)
    dtype = np.dtype(np.uint16 if vocab <= 65_536 else np.int32)
    writer = _ShardWriter(folder, dtype, text)
    pairs = empty = 0
    pieces, unknown = np.zeros(2, np.int64), np.zeros(2, np.int64)
    started = time.monotonic()
    bar = progress_bar(description=f"preparing {corpus.label}")
    try:
        lines = _lines_of(corpus)
        while chunk := list(itertools.islice(lines, _CHUNK)):
            texts = [[s for s, _ in chunk], [t for _, t in chunk]]
            ids = [
                tokenizer.encode_source(texts[0], threads),
                tokenizer.encode_target(texts[1], threads),
            ]
            writer.add(ids, texts)
            for side in (0, 1):
                pieces[side] += sum(map(len, ids[side]))
                unknown[side] += sum(row.count(UNK_ID) for row in ids[side])
            empty += sum(1 for s, t in zip(*ids) if not s or not t)
            pairs += len(chunk)
            bar.update(len(chunk))
        files = writer.finish()
    except BaseException:
        writer.discard()
        raise
    finally:
        bar.close()
    seconds = time.monotonic() - started
    manifest = {
        "format": FORMAT,
        "corpus": corpus.label,
        "source": records[0],
        "target": records[1],
        "tokenizer": tokenizer.fingerprint,
        "dtype": dtype.name,
        "pairs": pairs,
        "empty": empty,
        "pieces": pieces.tolist(),
        "unknown": unknown.tolist(),
        "seconds": round(seconds, 1),
        "files": files,
    }
    atomic_write_text(folder / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    _remove_other_shards(folder, {entry["file"] for entry in files.values()})
    log(
        f"data: {corpus.label}: prepared {pairs:,} pairs in {seconds:.1f} s "
        f"({pairs / max(seconds, 1e-9):,.0f} pairs/s)"
    )


def _remove_other_shards(folder: Path, keep: set[str]) -> None:
    """Deletes the shards an earlier preparation (or a killed one) left."""
    for path in folder.iterdir():
        if path.name != MANIFEST and path.name not in keep:
            with contextlib.suppress(OSError):
                path.unlink()


def describe(prepared: PreparedCorpus) -> str:
    """What preparing found, as fairseq-preprocess and onmt_build_vocab report it."""
    m = prepared.manifest
    pieces, unknown = m["pieces"], m["unknown"]
    rates = [100 * u / max(p, 1) for u, p in zip(unknown, pieces)]
    return (
        f"data: {prepared.corpus.label}: {m['pairs']:,} pairs read, {m['empty']:,} with an empty "
        f"side; {pieces[0]:,} source pieces ({rates[0]:.2f}% unknown), {pieces[1]:,} target "
        f"pieces ({rates[1]:.2f}% unknown)"
    )
