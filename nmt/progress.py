"""Progress bars for the commands that decode many sentences: shown on a terminal only.

A bar on stderr tells someone at a terminal how far a long file has got and how many sentences
per second the model decodes; in a pipe or a log file it would only be noise, so it is drawn
only when stderr is a terminal, and never with `--quiet`.
"""

from __future__ import annotations

import sys

from tqdm import tqdm


def progress_bar(
    total: int | None = None, quiet: bool = False, description: str = "", shown: bool = True
) -> tqdm:
    """A tqdm bar counting sentences on stderr, disabled unless stderr is a terminal.

    Args:
        total: sentences expected (None: unknown, the bar shows a count and rate).
        quiet: never draw it (the global `--quiet`).
        description: a few words before the bar, e.g. "translating".
        shown: False to switch it off for another reason (e.g. the translations themselves
            go to the same terminal and would be interleaved with it).

    Returns:
        A bar to `update(n)` and `close()`; a disabled one does nothing.
    """
    enabled = shown and not quiet and sys.stderr.isatty()
    return tqdm(
        total=total,
        desc=description or None,
        unit="sent",
        file=sys.stderr,
        disable=not enabled,
        dynamic_ncols=True,
        smoothing=0.1,
    )
