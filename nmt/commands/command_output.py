"""Where the commands that write text write it: stdout, or a file replaced only when complete."""

from __future__ import annotations

import contextlib
import sys


@contextlib.contextmanager
def output_stream(path: str):
    """A UTF-8 text stream to stdout ("-") or to a file written under a temporary name, so a
    crash never leaves a half-written file behind."""
    from nmt.atomic import atomic_path
    from nmt.data.text import text_io

    if path == "-":
        yield text_io(sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return
    with atomic_path(path) as tmp, open(tmp, "wb") as raw:
        out = text_io(raw)
        yield out
        out.flush()
        out.detach()
