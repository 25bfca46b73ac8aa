"""`nmt score`: the model's log-probability of given translations (forced decoding)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nmt.commands.command_output import output_stream


def add_parser(
    commands: argparse._SubParsersAction, global_flags: list[argparse.ArgumentParser]
) -> None:
    """Adds `nmt score` to `commands`, accepting the global flags after it too."""
    p = commands.add_parser(
        "score",
        parents=global_flags,
        help="log-probability of given translations (forced decoding)",
        description="Score each (source, target) line pair with the model: one output line per "
        "pair, in order, 'SUM<TAB>MEAN' where SUM = log P(target | source) summed over the "
        "target's pieces and the end-of-sentence token, MEAN = SUM / (pieces + 1).",
    )
    p.add_argument("--run-dir", required=True, type=Path, help="run directory of a trained model")
    p.add_argument("--source", required=True, help="source sentences (plain or .gz)")
    p.add_argument("--target", required=True, help="target sentences, one per source line")
    p.add_argument("--output", default="-", help="output file, or - for stdout")
    p.add_argument(
        "--per-piece",
        action="store_true",
        help="add a third column: each piece's log-probability, space-separated, EOS last",
    )
    p.add_argument("--batch-size", type=int, help="pairs per model call (default: the run's)")
    p.add_argument(
        "--checkpoint",
        action="append",
        help="checkpoint prefix instead of the best one; repeat for an ensemble",
    )
    p.set_defaults(run=_score)


def _score(args: argparse.Namespace) -> int:
    from nmt.data.line_batches import fixed_batches
    from nmt.data.text import check_parallel, read_parallel
    from nmt.decoding.scoring import ForcedDecoder, format_score
    from nmt.decoding.translator import Translator
    from nmt.progress import progress_bar

    total = check_parallel(args.source, args.target)
    translator = Translator.load(args.run_dir, args.checkpoint)
    decoder = ForcedDecoder.from_translator(translator, args.batch_size)
    shown = not (args.output == "-" and sys.stdout.isatty())
    bar = progress_bar(total, getattr(args, "quiet", False), "scoring", shown)
    with bar, output_stream(args.output) as out:
        # Chunks bound the memory; inside one, pairs are sorted by length into batches.
        for chunk in fixed_batches(read_parallel(args.source, args.target), 10_000):
            sources, targets = zip(*chunk)
            for pair in decoder.score(sources, targets, bar.update):
                out.write(format_score(pair, args.per_piece) + "\n")
            out.flush()
    return 0
