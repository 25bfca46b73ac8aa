"""Print the first batches of a training epoch as `nmt train` reads them.

One line per batch: the 0-based line numbers of its pairs in their corpus files, separated by
spaces (written NAME:LINE when the config has several corpora), nothing else. For people who
must check their data order, and for the tests.

    python tools/data_order.py --config C.yaml --run-dir RUN --epoch 1 --batches 5

The run directory gives the tokenizer and, unless data.prepared_dir names another folder, the
prepared corpora; what is missing or out of date is prepared first (messages on stderr).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="the YAML config training uses")
    parser.add_argument(
        "--run-dir",
        type=Path,
        required=True,
        help="the run directory (its tokenizer; prepared data unless data.prepared_dir is set)",
    )
    parser.add_argument("--epoch", type=int, default=1, help="1-based epoch (default 1)")
    parser.add_argument("--batches", type=int, default=10, help="batches to print (default 10)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="as nmt train"
    )
    args = parser.parse_args(argv)
    if args.epoch < 1 or args.batches < 0:
        parser.error("--epoch must be >= 1 and --batches >= 0")

    from nmt.config import load_config
    from nmt.data.tokenizer import prepare_tokenizer
    from nmt.data.training_data import load_training_data, prepared_folder
    from nmt.errors import NmtError

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        config = load_config(args.config, args.set)
        tokenizer = prepare_tokenizer(config, args.run_dir / "tokenizer", log)
        data = load_training_data(config, tokenizer, prepared_folder(config, args.run_dir), log)
    except NmtError as error:
        print(f"data_order: error: {error}", file=sys.stderr)
        return 1
    plan = data.plan(args.epoch - 1)
    names = [prepared.corpus.label for prepared in data.corpora]
    for index in range(min(args.batches, plan.batches)):
        batch = plan.batch(index)
        if data.several:
            words = [f"{names[c]}:{n}" for c, n in zip(batch.corpus, batch.line)]
        else:
            words = [str(n) for n in batch.line]
        print(" ".join(words))
    return 0


if __name__ == "__main__":
    sys.exit(main())
