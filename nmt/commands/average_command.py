"""`nmt average`: average the weights of several checkpoints of a run."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(
    commands: argparse._SubParsersAction, global_flags: list[argparse.ArgumentParser]
) -> None:
    """Adds `nmt average` to `commands`, accepting the global flags after it too."""
    p = commands.add_parser(
        "average",
        parents=global_flags,
        help="average the weights of several checkpoints",
        description="Write the mean of several checkpoints' weights to RUN_DIR/averaged/.",
    )
    p.add_argument("--run-dir", required=True, type=Path, help="run directory of a trained model")
    p.add_argument(
        "--last", type=int, default=3, help="average the newest N training checkpoints (default 3)"
    )
    p.add_argument(
        "--checkpoint",
        action="append",
        default=[],
        help="a checkpoint prefix to average instead (repeatable)",
    )
    p.set_defaults(run=_average)


def _average(args: argparse.Namespace) -> int:
    from nmt.training.averaging import average_checkpoints

    path = average_checkpoints(args.run_dir, args.checkpoint or None, args.last, report=print)
    print(f"averaged checkpoint: {path}")
    print(f"use it with: nmt translate --run-dir {args.run_dir} --checkpoint {path}")
    return 0
