"""Write a whole folder under a temporary name next to its destination, then rename it into place.

An export is many files (a SavedModel's graph, variables, assets); a kill in the middle must
never leave a folder that looks like an export but is half of one. The folder is built as
`.NAME.XXXX.tmp` beside NAME and renamed when complete; an existing NAME is moved aside and
removed only after the new folder is in place, so a failed export leaves the old one untouched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def staged_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yields an empty temporary folder beside `path`; it becomes `path` if the block succeeds.

    Args:
        path: the folder to create or replace.

    Raises:
        Whatever the block raises; the temporary folder is removed and `path` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    # mkdtemp makes it private (0700); an export is read by servers running as other users.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)
    try:
        yield tmp
        _sync_tree(tmp)
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old / path.name)
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _sync_tree(folder: Path) -> None:
    """fsyncs every file, so the renamed folder never holds data still only in the page cache."""
    for file in folder.rglob("*"):
        if file.is_file():
            with open(file, "rb") as f:
                os.fsync(f.fileno())
