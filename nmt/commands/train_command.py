"""`nmt train`: train a model from a YAML config, or resume a run."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path


def add_parser(
    commands: argparse._SubParsersAction, global_flags: list[argparse.ArgumentParser]
) -> None:
    """Adds `nmt train` to `commands`, accepting the global flags after it too."""
    p = commands.add_parser(
        "train",
        parents=global_flags,
        help="train a model, or resume one in an existing run dir",
        description="Train a model described by a YAML config. Re-running "
        "the same command on the same run directory resumes.",
    )
    p.add_argument("--config", required=True, help="YAML experiment config (see README)")
    p.add_argument(
        "--run-dir",
        required=True,
        type=Path,
        help="folder for the tokenizer, checkpoints, TensorBoard logs and config",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one config value, e.g. --set model.hidden_size=512 "
        "(repeatable; values are YAML)",
    )
    p.add_argument(
        "--init-from",
        metavar="RUN_OR_CHECKPOINT",
        help="fine-tune: start a new run from another run's weights (its best checkpoint, or "
        "the checkpoint prefix given) and tokenizer, with a fresh optimizer and step count; "
        "ignored when --run-dir already holds checkpoints (then training resumes)",
    )
    p.set_defaults(run=_train)


def _train(args: argparse.Namespace) -> int:
    from nmt.config import load_config
    from nmt.training.trainer import train

    config = load_config(args.config, args.set)
    log = {"log": _warnings_only} if args.quiet else {}
    result = train(config, args.run_dir, init_from=args.init_from, **log)
    if result.stopped_because == "signal":
        print(
            f"nmt: training interrupted at step {result.steps}; a checkpoint was saved. "
            f"Run the same command again to resume.",
            file=sys.stderr,
        )
        return 128 + (result.signal or signal.SIGINT)
    if result.best_bleu >= 0:
        print(f"best validation BLEU {result.best_bleu:.2f}")
    return 0


def _warnings_only(line: str) -> None:
    """The progress log of --quiet: drops progress lines, keeps warnings (on stderr)."""
    if line.startswith("nmt: "):
        print(line, file=sys.stderr, flush=True)
