"""The one exception type the CLI turns into a one-line message instead of a traceback."""


class NmtError(Exception):
    """A problem the user can fix: bad input, a missing file, an inconsistent run directory."""
