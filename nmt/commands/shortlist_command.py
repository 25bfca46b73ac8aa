"""`nmt shortlist`: a run's lexical shortlist, for faster decoding with `--shortlist`."""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path


def add_parser(
    commands: argparse._SubParsersAction, global_flags: list[argparse.ArgumentParser]
) -> None:
    """Adds `nmt shortlist` to `commands`, accepting the global flags after it too."""
    p = commands.add_parser(
        "shortlist",
        parents=global_flags,
        help="build a lexical shortlist for faster decoding (--shortlist)",
        description="Count which target pieces occur with which source pieces in the run's "
        "training pairs and write RUN_DIR/shortlist.npz. `nmt translate --shortlist FILE` then "
        "searches each batch over the special pieces, the --frequent most frequent target "
        "pieces and, for every source piece in the batch, its --per-source likeliest "
        "translations (Marian's lexical shortlist): faster, with probabilities normalised over "
        "those candidates only.",
    )
    p.add_argument("--run-dir", required=True, type=Path, help="run directory of a trained model")
    p.add_argument(
        "--per-source",
        type=int,
        default=50,
        help="target pieces kept per source piece, by Dice coefficient (default 50)",
    )
    p.add_argument(
        "--frequent",
        type=int,
        default=100,
        help="most frequent target pieces every batch may use (default 100)",
    )
    p.add_argument(
        "--max-sentences",
        type=int,
        default=1_000_000,
        help="count at most this many training pairs, the first ones (default 1,000,000)",
    )
    p.add_argument("--output", type=Path, help="file to write (default RUN_DIR/shortlist.npz)")
    p.set_defaults(run=_shortlist)


def _shortlist(args: argparse.Namespace) -> int:
    from nmt.data.text import read_parallel
    from nmt.decoding.shortlist import build_shortlist
    from nmt.errors import NmtError
    from nmt.run_directory import load_tokenizer, read_config

    for name in ("per_source", "frequent", "max_sentences"):
        if getattr(args, name) < 1:
            flag = "--" + name.replace("_", "-")
            raise NmtError(f"{flag} must be at least 1, got {getattr(args, name)}")
    config = read_config(args.run_dir)
    tokenizer = load_tokenizer(args.run_dir)
    corpora = config.data.corpora
    every_pair = itertools.chain.from_iterable(read_parallel(c.source, c.target) for c in corpora)
    pairs = list(itertools.islice(every_pair, args.max_sentences))
    sources, targets = zip(*pairs) if pairs else ((), ())
    shortlist = build_shortlist(
        tokenizer.encode_source(list(sources)),
        tokenizer.encode_target(list(targets)),
        tokenizer.source_vocab_size,
        tokenizer.target_vocab_size,
        per_source=args.per_source,
        frequent=args.frequent,
    )
    output = args.output or args.run_dir / "shortlist.npz"
    shortlist.save(output)
    print(
        f"shortlist of {len(pairs):,} training pairs ({', '.join(c.source for c in corpora)}): "
        f"{args.per_source} target pieces per source piece, {args.frequent} frequent ones"
    )
    print(f"written: {output}")
    print(f"use it with: nmt translate --run-dir {args.run_dir} --shortlist {output}")
    return 0
