"""`nmt sweep`: tune the GNMT length and coverage penalties on a validation set."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(
    commands: argparse._SubParsersAction, global_flags: list[argparse.ArgumentParser]
) -> None:
    """Adds `nmt sweep` to `commands`, accepting the global flags after it too."""
    p = commands.add_parser(
        "sweep",
        parents=global_flags,
        help="tune the length and coverage penalties on a validation set",
        description="Decode --source once per (alpha, beta) pair and print cased sacreBLEU "
        "against --ref for each, then the best pair (Wu et al., 2016, section 7).",
    )
    p.add_argument("--run-dir", required=True, type=Path, help="run directory of a trained model")
    p.add_argument("--source", required=True, help="validation source file (plain or .gz)")
    p.add_argument("--ref", required=True, help="its reference translations")
    p.add_argument(
        "--alpha",
        type=float,
        nargs="+",
        default=[0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
        help="length penalties to try (default: 0 0.2 0.4 0.6 0.8 1.0)",
    )
    p.add_argument(
        "--beta",
        type=float,
        nargs="+",
        default=[0.0, 0.1, 0.2],
        help="coverage penalties to try (default: 0 0.1 0.2)",
    )
    p.add_argument("--beam-size", type=int, help="beam width (default: the run's decoding config)")
    p.add_argument(
        "--checkpoint",
        action="append",
        help="checkpoint prefix instead of the best one; repeat for an ensemble",
    )
    p.set_defaults(run=_sweep)


def _sweep(args: argparse.Namespace) -> int:
    from nmt.data.text import check_parallel, read_lines
    from nmt.decoding.sweep import sweep_penalties
    from nmt.decoding.translator import Translator

    check_parallel(args.source, args.ref)
    translator = Translator.load(args.run_dir, args.checkpoint)
    beam = args.beam_size or translator.decoding.beam_size
    print(f"beam {beam}; cased sacreBLEU on {args.source}")
    print(f"{'alpha':>6} {'beta':>6} {'BLEU':>6} {'seconds':>8}")
    points = sweep_penalties(
        translator,
        list(read_lines(args.source)),
        list(read_lines(args.ref)),
        args.alpha,
        args.beta,
        beam,
        report=lambda p: print(
            f"{p.alpha:6.2f} {p.beta:6.2f} {p.bleu:6.2f} {p.seconds:8.1f}", flush=True
        ),
    )
    best = max(points, key=lambda p: p.bleu)
    print(
        f"best: alpha {best.alpha:g}, beta {best.beta:g} (BLEU {best.bleu:.2f}); use it with "
        f"--length-penalty {best.alpha:g} --coverage-penalty {best.beta:g} or set "
        "decoding.length_penalty and decoding.coverage_penalty"
    )
    return 0
