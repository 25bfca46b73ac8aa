"""`nmt prepare`: check and tokenize the training corpora once, before training."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(
    commands: argparse._SubParsersAction, global_flags: list[argparse.ArgumentParser]
) -> None:
    """Adds `nmt prepare` to `commands`, accepting the global flags after it too."""
    p = commands.add_parser(
        "prepare",
        parents=global_flags,
        help="check and tokenize the training corpora into binary shards (nmt train does it "
        "on first use otherwise)",
        description="Write the run's config and tokenizer as `nmt train` would, then check every "
        "training corpus (line counts, UTF-8) and tokenize it once, on every core, into "
        "memory-mapped shards in data.prepared_dir (default RUN_DIR/prepared). An up-to-date "
        "corpus is reused; a changed one is prepared again. Reports per corpus the pairs read "
        "and skipped, pieces and unknown pieces per side, and the steps of the first epoch.",
    )
    p.add_argument("--config", required=True, help="YAML experiment config (see README)")
    p.add_argument(
        "--run-dir",
        required=True,
        type=Path,
        help="the run directory `nmt train` will use (its config and tokenizer are written)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one config value, e.g. --set tokenizer.threads=8 (repeatable; YAML)",
    )
    p.set_defaults(run=_prepare)


def _prepare(args: argparse.Namespace) -> int:
    from nmt import run_directory
    from nmt.config import load_config
    from nmt.data.tokenizer import prepare_tokenizer
    from nmt.data.training_data import load_training_data, prepared_folder

    def log(line: str) -> None:
        if not args.quiet or line.startswith("nmt: "):
            print(line, flush=True)

    config = load_config(args.config, args.set)
    run_directory.prepare(config, args.run_dir, log)
    tokenizer = prepare_tokenizer(config, args.run_dir / run_directory.TOKENIZER, log)
    data = load_training_data(config, tokenizer, prepared_folder(config, args.run_dir), log)
    plan = data.plan(0)
    print(
        f"epoch 1: {len(plan.line):,} pairs in {plan.batches:,} batches "
        f"({plan.batches:,} steps on one device)"
    )
    return 0
