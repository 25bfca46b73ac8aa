"""Reading text files (plain or gzipped UTF-8), one sentence per line; errors name file:line.

Lines are split on "\\n" only (never on Unicode line separators), so the Nth line in is the Nth
sentence out. A trailing "\\r" (CRLF files) and a byte-order mark on line 1 are removed.
"""

from __future__ import annotations

import gzip
import io
import itertools
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Literal

from nmt.errors import NmtError

Errors = Literal["strict", "replace"]


def _open_binary(path: Path) -> BinaryIO:
    if str(path) == "-":
        raise NmtError(
            "reading '-' (standard input) is only supported by `nmt translate --input -`"
        )
    if not path.is_file():
        raise NmtError(f"{path}: no such file")
    if path.suffix == ".gz":
        return gzip.open(path, "rb")
    return open(path, "rb")


def decode_line(raw: bytes, where: str, line_number: int, errors: Errors = "strict") -> str:
    """Decodes one line of bytes, dropping the line ending.

    Raises:
        NmtError: the line is not valid UTF-8 (with errors="strict"), naming file and line.
    """
    if raw.endswith(b"\n"):
        raw = raw[:-1]
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    if line_number == 1 and raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        return raw.decode("utf-8", errors=errors)
    except UnicodeDecodeError as error:
        raise NmtError(
            f"{where}:{line_number}: invalid UTF-8 at byte {error.start} of the line "
            "(convert the file to UTF-8, or pass --errors replace)"
        ) from None


def read_lines(path: str | Path, errors: Errors = "strict") -> Iterator[str]:
    """Yields the lines of a text file, streaming (memory does not grow with the file).

    Raises:
        NmtError: missing file, unreadable gzip data, or invalid UTF-8 (naming file and line).
    """
    path = Path(path)
    try:
        with _open_binary(path) as stream:
            for number, raw in enumerate(stream, start=1):
                yield decode_line(raw, str(path), number, errors)
    except (OSError, EOFError, zlib.error) as error:
        raise NmtError(f"{path}: cannot read the file ({error})") from None


def read_stream(stream: BinaryIO, name: str, errors: Errors = "strict") -> Iterator[str]:
    """Like `read_lines` for an open binary stream such as standard input."""
    for number, raw in enumerate(stream, start=1):
        yield decode_line(raw, name, number, errors)


def count_lines(path: str | Path) -> int:
    """Number of lines in a text file (a last line without newline counts)."""
    path = Path(path)
    count = 0
    last = b"\n"
    try:
        with _open_binary(path) as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                count += block.count(b"\n")
                last = block[-1:]
    except (OSError, EOFError, zlib.error) as error:
        raise NmtError(f"{path}: cannot read the file ({error})") from None
    return count + (last != b"\n")


def check_parallel(source: str | Path, target: str | Path) -> int:
    """Checks that two parallel files have the same number of lines and returns it.

    Raises:
        NmtError: the counts differ (naming both files and both counts), or a file is missing.
    """
    n_source, n_target = count_lines(source), count_lines(target)
    if n_source != n_target:
        raise NmtError(
            f"parallel files differ in length: {source} has {n_source} lines, "
            f"{target} has {n_target} lines"
        )
    return n_source


def read_parallel(
    source: str | Path, target: str | Path, errors: Errors = "strict"
) -> Iterator[tuple[str, str]]:
    """Yields aligned (source, target) line pairs; the files must have equal line counts."""
    missing = object()
    for src, tgt in itertools.zip_longest(
        read_lines(source, errors), read_lines(target, errors), fillvalue=missing
    ):
        if src is missing or tgt is missing:
            raise NmtError(f"parallel files {source} and {target} differ in length")
        yield src, tgt


def text_io(stream: BinaryIO) -> io.TextIOWrapper:
    """UTF-8 text writer with "\\n" line endings on any platform."""
    return io.TextIOWrapper(stream, encoding="utf-8", newline="\n", write_through=False)
