"""`nmt translate --resume`: an output file that grows batch by batch and that a rerun of the
same command continues.

A plain `--output F` is written under a temporary name and renamed when complete
(`command_output.output_stream`), so a killed job leaves nothing and its rerun starts over. With
`--resume`, each batch's lines are appended to F as soon as they are translated; a rerun keeps
F's complete batches, cuts off what follows the last of them (part of the batch that was being
written when the job died, perhaps ending in part of a line) and translates only the input lines
after them, in the batches the first run would have made, so the file ends as an uninterrupted
run writes it.

Appending to the wrong file would mix two translations without a word, so F gets a record next
to it, `F.resume.json`: the input's line count and SHA-256 and the flags that change the output
lines. A rerun with another input or other flags is refused, as is an F with more lines than its
input gives, or an F that has no record (a file `--resume` did not write).
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import hashlib
import io
import json
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from nmt.atomic import atomic_write_text
from nmt.data.text import text_io
from nmt.errors import NmtError

RECORD_SUFFIX = ".resume.json"


class ResumedOutput(NamedTuple):
    """The output file opened for appending, and where the translation stands."""

    stream: io.TextIOWrapper  # UTF-8 text appended to the output file
    done: int  # input lines whose translations the file already holds


def input_fingerprint(path: Path) -> dict:
    """{"input_lines", "input_sha256"} of a text file's content (a .gz file's uncompressed
    content, so recompressing it changes nothing); lines are counted as `read_lines` yields them.

    Raises:
        NmtError: the file is missing or unreadable.
    """
    if not path.is_file():
        raise NmtError(f"{path}: no such file")
    digest, lines, last = hashlib.sha256(), 0, b"\n"
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
                lines += block.count(b"\n")
                last = block[-1:]
    except (OSError, EOFError, zlib.error) as error:
        raise NmtError(f"{path}: cannot read the file ({error})") from None
    return {"input_lines": lines + (last != b"\n"), "input_sha256": digest.hexdigest()}


@contextlib.contextmanager
def resumed_output(
    output: Path,
    source: Path,
    settings: dict,
    lines_per_input: int = 1,
    inputs_per_batch: int = 1,
) -> Iterator[ResumedOutput]:
    """Opens `output` to continue translating `source` where an earlier run of the same
    command stopped (or to start, if there is no earlier output).

    Args:
        output: the --output file.
        source: the --input file.
        settings: the flags that change the output lines, by argparse name (JSON values).
        lines_per_input: output lines per input line (--n-best).
        inputs_per_batch: input lines the command translates, and appends, at a time.

    Yields:
        A `ResumedOutput`; the stream is flushed when the block ends.

    Raises:
        NmtError: naming `output`: another process writes it, it has no record, its record
            names another input or other flags, or it holds more lines than the input gives.
    """
    record = {**input_fingerprint(source), "settings": json.loads(json.dumps(settings))}
    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        raw = open(output, "ab")  # appends even after the truncation below
    except OSError as error:
        raise NmtError(f"--output {output}: cannot write the file ({error})") from None
    with raw:
        try:
            fcntl.flock(raw.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise NmtError(f"--output {output} is being written by another process") from None
        record_path = output.with_name(output.name + RECORD_SUFFIX)
        if os.fstat(raw.fileno()).st_size == 0:
            atomic_write_text(record_path, json.dumps(record, indent=2) + "\n")
            done = 0
        else:
            _check_record(output, record_path, record)
            done = _resume_point(output, lines_per_input, inputs_per_batch, record["input_lines"])
        stream = text_io(raw)
        yield ResumedOutput(stream, done)
        stream.flush()
        stream.detach()


def _check_record(output: Path, record_path: Path, record: dict) -> None:
    """Refuses to continue `output` unless its record matches this command's."""
    start_over = "remove it to start over, or leave out --resume to overwrite it"
    try:
        saved = json.loads(record_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NmtError(
            f"--output {output} exists but has no {record_path.name}, so it is not the output "
            f"of an interrupted `nmt translate --resume`: {start_over}"
        ) from None
    except (OSError, ValueError) as error:
        raise NmtError(f"{record_path}: cannot read the record ({error}): {start_over}") from None
    if saved.get("input_sha256") != record["input_sha256"]:
        raise NmtError(
            f"--output {output} translates another input ({record_path.name} records "
            f"{saved.get('input_lines')} lines with another SHA-256): {start_over}"
        )
    ours, theirs = record["settings"], saved.get("settings", {})
    for name in sorted(ours.keys() | theirs.keys()):
        if ours.get(name) != theirs.get(name):
            raise NmtError(
                f"--output {output} was written with {_flag(name, theirs.get(name))}, this "
                f"command has {_flag(name, ours.get(name))}: give the same flags, or {start_over}"
            )


def _flag(name: str, value) -> str:
    """How the command line gave `value`: 'no --alignments', '--beam-size 4'."""
    flag = "--" + name.replace("_", "-")
    if value is None or value is False:
        return f"no {flag}"
    if value is True:
        return flag
    values = value if isinstance(value, list) else [value]
    return " ".join(f"{flag} {v}" for v in values)


def _resume_point(output: Path, lines_per_input: int, inputs_per_batch: int, inputs: int) -> int:
    """Cuts the file after its last complete batch and returns how many inputs it translates.

    The first run appended whole batches of `inputs_per_batch` inputs, `lines_per_input` lines
    each; a kill while one was being written leaves part of it. Keeping whole batches only lets
    the rerun batch the rest as the first run did, so its searches, and lines, are the same.

    Raises:
        NmtError: the file has more complete lines than `inputs` inputs give.
    """
    expected, batch = inputs * lines_per_input, inputs_per_batch * lines_per_input
    lines, kept, keep, position = 0, 0, 0, 0  # keep: the byte offset after the `kept` lines
    with open(output, "rb") as stream:
        for line in stream:
            position += len(line)
            if line.endswith(b"\n"):
                lines += 1
                if lines % batch == 0 or lines == expected:
                    kept, keep = lines, position
    if lines > expected:
        raise NmtError(
            f"--output {output} has {lines} lines, more than the {inputs} input lines give"
            + (f" at {lines_per_input} lines each" if lines_per_input > 1 else "")
            + ": it is not this translation's output; remove it to start over"
        )
    if keep < position:
        os.truncate(output, keep)
    return kept // lines_per_input
