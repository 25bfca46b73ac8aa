"""Lines in batches: as many as have arrived on a pipe, or fixed-size chunks of a file.

`nmt translate` reading standard input must serve two kinds of writers. A program that writes
one line and waits for its translation (without closing the pipe) needs that line translated
now; a file piped in (`cat big.txt | nmt translate`) should still be translated in large,
length-sorted batches. Reading whatever has arrived, without blocking once something has,
gives both: the waiting writer's batch is its one line, the file's batches are as large as the
pipe buffer (and `max_lines`) allow.
"""

from __future__ import annotations

import itertools
import os
import select
from collections.abc import Iterable, Iterator

from nmt.data.text import Errors, decode_line

_READ_SIZE = 1 << 16  # the Linux pipe buffer's default size


def fixed_batches(lines: Iterable[str], size: int) -> Iterator[list[str]]:
    """Consecutive lists of `size` lines (the last may be shorter)."""
    if size < 1:
        raise ValueError(f"`size` must be a positive integer, got {size}")
    lines = iter(lines)
    while batch := list(itertools.islice(lines, size)):
        yield batch


def _readable_now(fd: int) -> bool:
    readable, _, _ = select.select([fd], [], [], 0)
    return bool(readable)


def available_batches(
    fd: int, name: str, errors: Errors = "strict", max_lines: int = 1024
) -> Iterator[list[str]]:
    """Yields the complete lines that have arrived on `fd`, blocking only while none has.

    Each batch holds every complete line read so far (at most `max_lines`): the read waits for
    data once, then takes more only while more is ready (`select` with a zero timeout). A
    last line without a newline is yielded at end of input.

    Args:
        fd: a readable file descriptor (a pipe, terminal or file).
        name: what error messages call the input, e.g. "<stdin>".
        errors: invalid UTF-8 handling, as in `nmt.data.text.decode_line`.
        max_lines: most lines per batch.

    Raises:
        NmtError: a line is not valid UTF-8 (with errors="strict"), naming `name` and the line.
    """
    if max_lines < 1:
        raise ValueError(f"`max_lines` must be a positive integer, got {max_lines}")
    pending = b""
    complete: list[bytes] = []
    number = 0
    ended = False
    while not ended or complete or pending:
        if not ended and len(complete) < max_lines:
            # Block for the first chunk only when nothing is waiting to be yielded.
            while not ended and len(complete) < max_lines and (not complete or _readable_now(fd)):
                data = os.read(fd, _READ_SIZE)
                ended = not data
                *new, pending = (pending + data).split(b"\n")
                complete += [line + b"\n" for line in new]
        if ended and pending:
            complete.append(pending)
            pending = b""
        batch, complete = complete[:max_lines], complete[max_lines:]
        if batch:
            yield [decode_line(raw, name, number + i, errors) for i, raw in enumerate(batch, 1)]
            number += len(batch)
