"""`nmt demo`: train and score the built-in toy task."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(
    commands: argparse._SubParsersAction, global_flags: list[argparse.ArgumentParser]
) -> None:
    """Adds `nmt demo` to `commands`, accepting the global flags after it too."""
    p = commands.add_parser(
        "demo",
        parents=global_flags,
        help="train and score the built-in toy task (no download)",
        description="Generate the toy English->German number-words task, "
        "train a small model, translate its held-out test set, print BLEU.",
    )
    p.add_argument(
        "--run-dir",
        type=Path,
        default=Path("runs/demo"),
        help="where to put the toy data and the run (default: runs/demo)",
    )
    p.add_argument("--max-steps", type=int, help="training steps (default: the demo's 1200)")
    p.set_defaults(run=_demo)


def _demo(args: argparse.Namespace) -> int:
    from nmt.demo import run_demo

    scores = run_demo(args.run_dir, args.max_steps)
    bleu = scores["bleu"]
    print(
        f"toy test set: BLEU {bleu['score']:.2f} ({bleu['signature']}), "
        f"chrF {scores['chrf']['score']:.2f}"
    )
    print(f"the run directory {args.run_dir} works with `nmt translate --run-dir {args.run_dir}`")
    return 0
