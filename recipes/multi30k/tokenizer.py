#!/usr/bin/env python3
"""Train the recipe's SentencePiece tokenizer once, before its seeds train.

The models of an ensemble must share piece ids, so run.sh trains one tokenizer here and gives each
seed's run directory a copy, instead of letting every `nmt train` train its own.

    python recipes/multi30k/tokenizer.py CONFIG RUN_DIR [--set section.key=value ...]

writes RUN_DIR/tokenizer/ (left as it is when it is already complete).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", help="the recipe's YAML config, e.g. recipes/multi30k/en-de.yaml")
    parser.add_argument("run_dir", type=Path, help="the recipe's run directory")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="config overrides, as for `nmt train` (the tokenizer.* and data.* ones matter here)",
    )
    args = parser.parse_args(argv)

    from nmt.config import load_config
    from nmt.data.tokenizer import prepare_tokenizer
    from nmt.errors import NmtError

    try:
        config = load_config(args.config, args.set)
        args.run_dir.mkdir(parents=True, exist_ok=True)
        prepare_tokenizer(config, args.run_dir / "tokenizer", lambda line: print(line, flush=True))
    except NmtError as error:
        print(f"tokenizer.py: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
