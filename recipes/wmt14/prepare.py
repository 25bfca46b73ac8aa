#!/usr/bin/env python3
"""Fetch and clean the WMT14 English-German data (Bojar et al., 2014), GNMT's benchmark.

Training: Europarl v7, CommonCrawl and News Commentary v9, de-en, from the WMT14 training
archives. Dev: newstest2013. Test: newstest2014, the full 3,003 sentences (sacreBLEU's
`wmt14/full`, which papers usually report; its `wmt14` is the 2,737 of the official evaluation).

    python recipes/wmt14/prepare.py --data-dir /data/wmt14   # the plain files (README.md)
    python recipes/wmt14/prepare.py                          # downloads (needs internet)

A download is checked against CHECKSUMS. Where CHECKSUMS has no value (nobody could compute one
when this recipe was written), the first download's size and SHA-256 are recorded in
OUT/checksums.lock.json and every later run checks against that record: trust on first use,
said so on the terminal. Dev and test sets come through sacreBLEU, which checks their MD5.

Cleaning (training corpora only; dev and test are copied as they are), in this order, each
dropped pair counted under its first reason:
  invalid_utf8  a side is not UTF-8;
  empty         a side has no words (whitespace is collapsed first);
  too_long      a side has more than --max-words words (250: Moses' clean-corpus-n.perl);
  ratio         one side has more than --max-ratio times the other's words (9: clean-corpus-n);
  copy          the source equals the target: untranslated copies, the noise that hurts NMT
                most (Khayrallah and Koehn, 2018), common in CommonCrawl;
  duplicate     the same pair earlier in this corpus or an earlier one.
Written: OUT/CORPUS.{en,de}.gz, OUT/dropped/CORPUS.tsv.gz (reason, line, source, target),
OUT/cleaning.md and OUT/cleaning.json (pairs read, kept and dropped per reason per corpus, the
inputs' SHA-256). Every file appears only once complete; cleaning.json is written last, and a
rerun with the same inputs and rules reuses the cleaned corpora.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gzip
import hashlib
import itertools
import json
import shutil
import sys
import tarfile
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, NamedTuple

from nmt.atomic import atomic_path, atomic_write_text

STATMT = "https://www.statmt.org"


class Corpus(NamedTuple):
    """One training corpus: our name for it, its files' stem, the archive and folder on statmt.org
    (the WMT14 task page links the unchanged WMT13 copies of Europarl v7 and CommonCrawl)."""

    name: str
    stem: str
    archive: str
    folder: str


CORPORA = (
    Corpus("europarl-v7", "europarl-v7.de-en", "training-parallel-europarl-v7.tgz", "wmt13"),
    Corpus("commoncrawl", "commoncrawl.de-en", "training-parallel-commoncrawl.tgz", "wmt13"),
    Corpus(
        "news-commentary-v9", "news-commentary-v9.de-en", "training-parallel-nc-v9.tgz", "wmt14"
    ),
)
# Our name -> sacreBLEU's test set.
TEST_SETS = {"newstest2013": "wmt13", "newstest2014": "wmt14/full"}
LANGUAGES = ("en", "de")  # source, target
REASONS = ("invalid_utf8", "empty", "too_long", "ratio", "copy", "duplicate")

# SHA-256 of the official files: the archives, and the plain files of the local form (for .gz
# copies, of their uncompressed text). None: not known yet. This recipe was written without
# internet access, so none is filled in: take them from checksums.lock.json (archives) and
# cleaning.json (plain files) after a download you have checked against another copy.
CHECKSUMS: dict[str, str | None] = {
    **{corpus.archive: None for corpus in CORPORA},
    **{f"{corpus.stem}.{lang}": None for corpus in CORPORA for lang in LANGUAGES},
    **{f"{test}.{lang}": None for test in TEST_SETS for lang in LANGUAGES},
}


class ChecksumError(Exception):
    pass


class Pair(NamedTuple):
    source: Path
    target: Path


def file_digest(path: Path) -> tuple[int, str]:
    """(size in bytes, SHA-256) of a file."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()


def _open_text(path: Path) -> BinaryIO:
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


@contextlib.contextmanager
def _gzip_writer(path: Path) -> Iterator[BinaryIO]:
    """A gzip stream into `path`, renamed into place only when the block succeeds."""
    with atomic_path(path) as tmp, open(tmp, "wb") as raw:
        with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0) as stream:
            yield stream


def _check(name: str, digest: str) -> None:
    expected = CHECKSUMS.get(name)
    if expected and digest != expected:
        raise ChecksumError(f"{name}: SHA-256 {digest} does not match the official {expected}")


# --- Downloads -----------------------------------------------------------------------------


def _read_lock(lock_path: Path) -> dict:
    return json.loads(lock_path.read_text()) if lock_path.is_file() else {}


def _record(lock_path: Path, name: str, url: str, size: int, digest: str) -> None:
    lock = _read_lock(lock_path)
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    lock[name] = {"url": url, "size": size, "sha256": digest, "recorded": when}
    atomic_write_text(lock_path, json.dumps(lock, indent=2, sort_keys=True) + "\n")
    print(
        f"NOTE {name}: no official SHA-256 to check it against, so this copy is NOT verified."
        f" Recorded its size ({size:,} bytes) and SHA-256 {digest} in {lock_path}; later runs"
        " check against that record. Compare it with a copy from elsewhere, then put it in"
        " CHECKSUMS in prepare.py."
    )


def fetch_archive(name: str, url: str, downloads: Path, lock_path: Path) -> Path:
    """Downloads one archive into `downloads`, checked against CHECKSUMS or the lock file's
    record of its first download (recorded now when there is neither)."""
    target = downloads / name
    record = _read_lock(lock_path).get(name, {})
    expected = CHECKSUMS.get(name) or record.get("sha256")
    if target.is_file():
        size, digest = file_digest(target)
        if expected is None:
            _record(lock_path, name, url, size, digest)
            return target
        if digest == expected:
            return target
        print(f"{target}: SHA-256 {digest} is not the expected {expected}: downloading again")
    print(f"downloading {url}")
    with atomic_path(target) as tmp:
        with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as f:
            shutil.copyfileobj(response, f, 1 << 20)
        size, digest = file_digest(tmp)
        if expected and digest != expected:
            origin = "official" if CHECKSUMS.get(name) else f"recorded in {lock_path}"
            raise ChecksumError(
                f"{name}: SHA-256 {digest} does not match the {origin} {expected} (not kept;"
                " if the archive changed upstream, check it and remove that record)"
            )
    if expected is None:
        _record(lock_path, name, url, size, digest)
    return target


def extract_pair(archive: Path, stem: str, raw_dir: Path) -> Pair:
    """Writes the en and de files named `stem`.{en,de} in the archive (at any depth) to raw_dir.
    Only those members' contents are read, into names of ours: no member path is trusted."""
    wanted = {f"{stem}.{lang}": raw_dir / f"{stem}.{lang}" for lang in LANGUAGES}
    found = set()
    try:
        with tarfile.open(archive, "r|*") as tar:
            for member in tar:
                name = Path(member.name).name
                if member.isfile() and name in wanted and name not in found:
                    with atomic_path(wanted[name]) as tmp, open(tmp, "wb") as out:
                        shutil.copyfileobj(tar.extractfile(member), out, 1 << 20)
                    found.add(name)
    except (tarfile.TarError, EOFError) as error:
        raise OSError(f"{archive}: unreadable archive ({error})") from None
    missing = sorted(set(wanted) - found)
    if missing:
        raise OSError(f"{archive}: no {' or '.join(missing)} inside")
    return Pair(*wanted.values())


def downloaded_training(out: Path, mirror: str | None) -> dict[str, Pair]:
    """The training corpora from their archives, extracted into OUT/raw once."""
    pairs = {}
    for corpus in CORPORA:
        raw = Pair(*(out / "raw" / f"{corpus.stem}.{lang}" for lang in LANGUAGES))
        if not (raw.source.is_file() and raw.target.is_file()):
            base = mirror.rstrip("/") if mirror else f"{STATMT}/{corpus.folder}"
            archive = fetch_archive(
                corpus.archive,
                f"{base}/{corpus.archive}",
                out / "downloads",
                out / "checksums.lock.json",
            )
            raw = extract_pair(archive, corpus.stem, out / "raw")
        pairs[corpus.name] = raw
    return pairs


def sacrebleu_test_set(name: str) -> Pair:
    """The plain source and reference files sacreBLEU keeps for one of TEST_SETS (it downloads
    them once, into ~/.sacrebleu or $SACREBLEU, checking the archive's MD5)."""
    from sacrebleu.utils import get_reference_files, get_source_file

    test_set = TEST_SETS[name]
    try:
        source = get_source_file(test_set, "en-de")
        (reference,) = get_reference_files(test_set, "en-de")
    except (Exception, SystemExit) as error:  # sacreBLEU exits when a download fails
        raise OSError(f"sacreBLEU could not fetch {test_set} en-de ({error!r})") from None
    return Pair(Path(source), Path(reference))


# --- The local form ------------------------------------------------------------------------


def find_local(data_dir: Path, name: str) -> Path:
    """DATA_DIR/name (or name.gz), else the one file of that name anywhere below DATA_DIR (the
    archives extract into training/ or not at all)."""
    for candidate in (data_dir / name, data_dir / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    found = sorted(p for n in (name, f"{name}.gz") for p in data_dir.rglob(n) if p.is_file())
    if len(found) == 1:
        return found[0]
    if found:
        raise OSError(f"{data_dir} holds {name} {len(found)} times: {', '.join(map(str, found))}")
    raise OSError(f"{name}: not in {data_dir} (README.md lists the files DATA_DIR needs)")


def local_pair(data_dir: Path, stem: str) -> Pair:
    return Pair(*(find_local(data_dir, f"{stem}.{lang}") for lang in LANGUAGES))


# --- Cleaning ------------------------------------------------------------------------------


def pair_problem(source: str, target: str, max_words: int, max_ratio: float) -> str | None:
    """Why a pair of whitespace-normalized sentences is dropped (one of REASONS but the first
    and last, which need more than the pair), or None to keep it."""
    s, t = len(source.split()), len(target.split())
    if not s or not t:
        return "empty"
    if s > max_words or t > max_words:
        return "too_long"
    if max(s, t) > max_ratio * min(s, t):
        return "ratio"
    if source == target:
        return "copy"
    return None


def _pairs(files: Pair) -> Iterator[tuple[bytes, bytes]]:
    """The two files' lines side by side; an error when one has more lines."""
    with _open_text(files.source) as source, _open_text(files.target) as target:
        for a, b in itertools.zip_longest(source, target):
            if a is None or b is None:
                raise OSError(f"{files.source} and {files.target} have different line counts")
            yield a, b


def _normalized(raw: bytes, errors: str = "strict") -> str:
    """The line as text, whitespace runs (tabs, no-break spaces...) made one space, zero-width
    no-break spaces (byte-order marks) removed."""
    return " ".join(raw.decode("utf-8", errors).replace("\ufeff", "").split())


def judge_pair(
    raw_source: bytes, raw_target: bytes, seen: set[int], max_words: int, max_ratio: float
) -> tuple[str, str, str | None]:
    """(source, target, reason): the normalized pair and why it is dropped, one of REASONS; None
    keeps it and adds its 64-bit hash to `seen` (over WMT14's 4.5 million pairs, one chance in
    two million that any pair is wrongly taken for a duplicate)."""
    try:
        source, target = _normalized(raw_source), _normalized(raw_target)
    except UnicodeDecodeError:
        return (
            _normalized(raw_source, "replace"),
            _normalized(raw_target, "replace"),
            "invalid_utf8",
        )
    reason = pair_problem(source, target, max_words, max_ratio)
    if reason is None:
        key = hashlib.blake2b(f"{source}\t{target}".encode(), digest_size=8).digest()
        key = int.from_bytes(key, "little")
        if key in seen:
            reason = "duplicate"
        seen.add(key)
    return source, target, reason


def clean_corpus(
    name: str, files: Pair, out: Path, seen: set[int], max_words: int, max_ratio: float
) -> tuple[dict, dict]:
    """Writes the kept pairs of one corpus to OUT/NAME.{en,de}.gz and the dropped ones, with
    their reason and line, to OUT/dropped/NAME.tsv.gz.

    Args:
        seen: hashes of the pairs kept so far, in this and earlier corpora (updated).

    Returns:
        (counts: read, kept, dropped per reason; SHA-256 of each input's text by file name).

    Raises:
        ChecksumError: an input has a known SHA-256 and does not match it (nothing is written).
    """
    counts = Counter({reason: 0 for reason in REASONS})
    digests = {path.name.removesuffix(".gz"): hashlib.sha256() for path in files}
    read = 0
    paths = [out / f"{name}.{lang}.gz" for lang in LANGUAGES] + [out / "dropped" / f"{name}.tsv.gz"]
    with contextlib.ExitStack() as stack:
        source_out, target_out, dropped = (stack.enter_context(_gzip_writer(p)) for p in paths)
        for read, raw in enumerate(_pairs(files), 1):
            for digest, side in zip(digests.values(), raw):
                digest.update(side)
            source, target, reason = judge_pair(*raw, seen, max_words, max_ratio)
            counts[reason or "kept"] += 1
            if reason:
                dropped.write(f"{reason}\t{read}\t{source}\t{target}\n".encode())
            else:
                source_out.write(f"{source}\n".encode())
                target_out.write(f"{target}\n".encode())
        hexdigests = {file: digest.hexdigest() for file, digest in digests.items()}
        for file, digest in hexdigests.items():
            _check(file, digest)  # before the outputs are renamed into place
    summary = {"read": read, "kept": counts["kept"], "dropped": {r: counts[r] for r in REASONS}}
    return summary, hexdigests


def _fingerprint(training: dict[str, Pair], max_words: int, max_ratio: float) -> dict:
    """What the cleaned corpora depend on: the rules and each input's path, size and mtime."""
    inputs = {}
    for name, files in training.items():
        for lang, path in zip(LANGUAGES, files):
            stat = path.stat()
            inputs[f"{name}.{lang}"] = [str(path.resolve()), stat.st_size, stat.st_mtime_ns]
    return {"max_words": max_words, "max_ratio": max_ratio, "inputs": inputs}


def clean_all(training: dict[str, Pair], out: Path, max_words: int, max_ratio: float) -> dict:
    """Cleans every corpus, in CORPORA's order (a pair repeated across corpora stays in the
    first), unless cleaning.json says the same inputs were cleaned with the same rules.

    Returns:
        The report's training part: fingerprint, corpora (counts) and inputs (SHA-256).
    """
    fingerprint = _fingerprint(training, max_words, max_ratio)
    previous = out / "cleaning.json"
    outputs = [out / f"{name}.{lang}.gz" for name in training for lang in LANGUAGES]
    if previous.is_file() and all(path.is_file() for path in outputs):
        report = json.loads(previous.read_text())
        if report.get("fingerprint") == fingerprint:
            print(f"ok  cleaned corpora up to date ({previous})")
            return {key: report[key] for key in ("fingerprint", "corpora", "inputs")}
    seen: set[int] = set()  # about 70 bytes a kept pair: some 300 MB for WMT14
    corpora, inputs = {}, {}
    for name, files in training.items():
        print(f"cleaning {name}: {files.source}, {files.target}")
        corpora[name], digests = clean_corpus(name, files, out, seen, max_words, max_ratio)
        inputs.update(digests)
    return {"fingerprint": fingerprint, "corpora": corpora, "inputs": inputs}


def copy_test_set(name: str, files: Pair, out: Path) -> dict:
    """Copies a dev or test set, uncleaned, to OUT/NAME.{en,de}.gz; both sides must have as
    many lines. Returns its line count and each side's SHA-256."""
    lines, digests = [], {}
    for lang, path in zip(LANGUAGES, files):
        digest, count = hashlib.sha256(), 0
        with _open_text(path) as text, _gzip_writer(out / f"{name}.{lang}.gz") as copy:
            for line in text:
                count += 1
                digest.update(line)
                copy.write(line)
            _check(f"{name}.{lang}", digest.hexdigest())
        lines.append(count)
        digests[f"{name}.{lang}"] = digest.hexdigest()
    if lines[0] != lines[1]:
        raise OSError(f"{name}: {files.source} has {lines[0]} lines, {files.target} {lines[1]}")
    return {"lines": lines[0], "sha256": digests}


def report_markdown(report: dict) -> str:
    """cleaning.md: the counts of cleaning.json as a table."""
    corpora = report["corpora"]
    rules = report["fingerprint"]
    header = ["corpus", "read", "kept", *REASONS]
    rows = [[name, c["read"], c["kept"], *c["dropped"].values()] for name, c in corpora.items()]
    rows.append(["total", *(sum(row[i] for row in rows) for i in range(1, len(header)))])
    lines = [
        "# WMT14 en-de training corpora after cleaning (prepare.py)",
        "",
        f"Pairs dropped, by first reason: a side not UTF-8, empty, over {rules['max_words']}"
        f" words, a word ratio over {rules['max_ratio']:g}, source equal to target, a pair"
        " seen before (in this corpus or an earlier one). Each dropped pair, with its reason"
        " and line, is in dropped/CORPUS.tsv.gz.",
        "",
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---" for _ in header) + " |",
        *(
            "| " + " | ".join(f"{v:,}" if isinstance(v, int) else v for v in row) + " |"
            for row in rows
        ),
        "",
        "Dev and test sets, as given (not cleaned): "
        + ", ".join(f"{name} {t['lines']:,} lines" for name, t in report["test_sets"].items()),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="folder holding the extracted plain files named in README.md (no download)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).parent / "data",
        help="where the cleaned corpora and test sets go (default: recipes/wmt14/data)",
    )
    parser.add_argument(
        "--mirror", help="base URL holding the three training archives (default: statmt.org)"
    )
    parser.add_argument("--max-words", type=int, default=250, help="most words a side (250)")
    parser.add_argument(
        "--max-ratio",
        type=float,
        default=9.0,
        help="most words of one side per word of the other (9)",
    )
    args = parser.parse_args(argv)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    if not (out / ".gitignore").is_file():  # downloads and corpora are never committed
        atomic_write_text(out / ".gitignore", "*\n")
    try:
        if args.data_dir is not None:
            training = {c.name: local_pair(args.data_dir, c.stem) for c in CORPORA}
            tests = {name: local_pair(args.data_dir, name) for name in TEST_SETS}
        else:
            training = downloaded_training(out, args.mirror)
            tests = {name: sacrebleu_test_set(name) for name in TEST_SETS}
        test_sets = {name: copy_test_set(name, files, out) for name, files in tests.items()}
        report = clean_all(training, out, args.max_words, args.max_ratio)
    except (ChecksumError, OSError) as error:
        print(f"prepare.py: error: {error}", file=sys.stderr)
        return 1
    report["test_sets"] = test_sets
    markdown = report_markdown(report)
    atomic_write_text(out / "cleaning.md", markdown)
    atomic_write_text(out / "cleaning.json", json.dumps(report, indent=2) + "\n")
    print(markdown, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
