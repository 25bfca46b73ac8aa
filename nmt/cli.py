"""The `nmt` command: global flags, the parser of every subcommand and `main`, which runs one
and turns errors the user can fix into one line.

Each subcommand (one per user task, each calling one library function) lives in its own
module of `nmt.commands`.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

from nmt.commands import (
    average_command,
    demo_command,
    evaluate_command,
    export_command,
    prepare_command,
    score_command,
    serve_command,
    shortlist_command,
    sweep_command,
    train_command,
    translate_command,
)

# Imported from here by callers and tests that predate nmt.commands.
from nmt.commands.decoding_flags import decoding_overrides as _decoding_overrides  # noqa: F401
from nmt.commands.decoding_flags import positive_int
from nmt.commands.evaluate_command import language_suffix as _language_suffix  # noqa: F401
from nmt.errors import NmtError
from nmt.threads import search_thread_pools, set_thread_pools

# Exit statuses: 0 done, 1 an error the user can fix (NmtError), 2 a command-line usage error
# (argparse's own), 128 + N stopped by signal N (130 Ctrl-C, 143 SIGTERM).
EXIT_ERROR = 1
DISTRIBUTION = "gnmt-keras"  # the name on the package index; `import nmt` and `nmt` stay


def _global_flags(after_command: bool) -> argparse.ArgumentParser:
    """--debug, --quiet and --threads, accepted before the subcommand and after it.

    After it they default to SUPPRESS, so a subcommand that does not repeat a flag leaves the
    value given before the subcommand in place.
    """

    def default(value):
        return argparse.SUPPRESS if after_command else value

    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group("global options (before or after COMMAND)")
    group.add_argument(
        "--debug",
        action="store_true",
        default=default(False),
        help="show full Python tracebacks (and TensorFlow's start-up log) instead of one-line "
        "errors",
    )
    group.add_argument(
        "--quiet",
        action="store_true",
        default=default(False),
        help="no progress output (training log lines, progress bars); results, warnings and "
        "errors still print",
    )
    group.add_argument(
        "--threads",
        type=positive_int,
        default=default(None),
        metavar="N",
        help="TensorFlow's intra-op and inter-op thread pools, N threads each (default: "
        "TensorFlow's choice, about one per core; for a search of batches side by side, "
        "cores / decoding.concurrent_batches intra-op threads each)",
    )
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:  # a source checkout on PYTHONPATH, not installed
        from nmt import __version__

        return __version__


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand (each flag documented for --help)."""
    parser = argparse.ArgumentParser(
        prog="nmt",
        description="GNMT-style LSTM neural machine translation (Keras 3 / TensorFlow).",
        parents=[_global_flags(after_command=False)],
    )
    parser.add_argument("--version", action="version", version=f"nmt {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    flags = [_global_flags(after_command=True)]

    prepare_command.add_parser(commands, flags)
    train_command.add_parser(commands, flags)
    translate_command.add_parser(commands, flags)
    evaluate_command.add_parser(commands, flags)
    score_command.add_parser(commands, flags)
    sweep_command.add_parser(commands, flags)
    average_command.add_parser(commands, flags)
    demo_command.add_parser(commands, flags)
    serve_command.add_parser(commands, flags)
    export_command.add_parser(commands, flags)
    shortlist_command.add_parser(commands, flags)
    return parser


def _import_tensorflow(quiet: bool) -> None:
    """Imports TensorFlow and Keras, with stderr silenced at the file-descriptor level if `quiet`.

    TensorFlow's C++ start-up (CUDA probing on CPU-only machines, absl's pre-init notice) writes
    to fd 2 regardless of TF_CPP_MIN_LOG_LEVEL, burying our one-line messages. Keras imports
    matplotlib (when installed, as with the [plots] extra) for an image-gallery helper nmt never
    calls; hiding it during the import saves every command that start-up time, and
    --attention-plots imports it later as usual.
    """
    hidden = [name for name in ("matplotlib", "matplotlib.pyplot") if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # `import matplotlib` raises ImportError meanwhile
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        if quiet:
            os.dup2(devnull, 2)
        import keras  # noqa: F401
        import tensorflow as tf

        tf.config.list_physical_devices()  # device discovery logs too; do it now, silently
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
        for name in hidden:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]


def _thread_pools(args: argparse.Namespace) -> tuple[int, int] | None:
    """(intra-op, inter-op) sizes of TensorFlow's thread pools for this command, or None to
    keep TensorFlow's choice: --threads N sets both (the inter-op pool at least one thread per
    search), else a command that searches batches side by side gives each search its share of
    the cores (`nmt.threads.search_thread_pools`)."""
    searches = _concurrent_searches(args)
    if args.threads is not None:  # the inter-op pool still holds every search
        return args.threads, max(args.threads, searches)
    return search_thread_pools(searches)


def _concurrent_searches(args: argparse.Namespace) -> int:
    """decoding.concurrent_batches as the command will use it: the flag, else the run's config
    (1 for a command that does not decode, or whose run the command itself will reject)."""
    if not hasattr(args, "concurrent_batches"):
        return 1
    if args.concurrent_batches is not None:
        return args.concurrent_batches
    if getattr(args, "run_dir", None) is None:
        return 1
    from nmt.run_directory import read_config

    try:
        return read_config(args.run_dir).decoding.concurrent_batches
    except NmtError:
        return 1


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.quiet:
        os.environ["NMT_QUIET"] = "1"  # for progress bars below the CLI, and child processes
    try:
        if getattr(args, "uses_tensorflow", lambda args: True)(args):
            _import_tensorflow(quiet=not args.debug)
            if not set_thread_pools(_thread_pools(args)) and args.threads is not None:
                print(
                    "nmt: warning: --threads ignored: TensorFlow already runs in this process",
                    file=sys.stderr,
                )
        return args.run(args)
    except NmtError as error:
        if args.debug:
            raise
        print(f"nmt: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("nmt: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT
    except BrokenPipeError:  # `nmt translate | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
