"""Print the first batches of a training epoch as `nmt train` reads them.

One line per batch: the 0-based line numbers of its pairs in their corpus files, separated by
spaces (written NAME:LINE when the config has several corpora), nothing else. For people who
must check their data order, and for the tests.

    python tools/data_order.py --config C.yaml --run-dir RUN --epoch 1 --batches 5

Epochs count from 1, as training's log lines do. The run directory gives the tokenizer and,
unless data.prepared_dir names another folder, the prepared corpora; what is missing or out of
date is prepared first (messages on stderr). Without --run-dir, the tokenizer is
tokenizer.model or one trained as `nmt train` would, and the corpora are prepared in
data.prepared_dir or a temporary folder.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="the YAML config training uses")
    parser.add_argument(
        "--run-dir",
        type=Path,
        help="the run directory (its tokenizer; prepared data unless data.prepared_dir is set); "
        "default: a temporary one",
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

    with tempfile.TemporaryDirectory(prefix="data-order-") as scratch:
        run_dir = args.run_dir or Path(scratch)
        try:
            config = load_config(args.config, args.set)
            tokenizer = prepare_tokenizer(config, run_dir / "tokenizer", log)
            data = load_training_data(config, tokenizer, prepared_folder(config, run_dir), log)
        except NmtError as error:
            print(f"data_order: error: {error}", file=sys.stderr)
            return 1
        _print_batches(data, args.epoch - 1, args.batches)
    return 0


def _print_batches(data, epoch: int, count: int) -> None:
    """The first `count` batches of 0-based `epoch`, one line each."""
    plan = data.plan(epoch)
    names = [prepared.corpus.label for prepared in data.corpora]
    for index in range(min(count, plan.batches)):
        batch = plan.batch(index)
        if data.several:
            words = [f"{names[c]}:{n}" for c, n in zip(batch.corpus, batch.line)]
        else:
            words = [str(n) for n in batch.line]
        print(" ".join(words))


if __name__ == "__main__":
    sys.exit(main())
