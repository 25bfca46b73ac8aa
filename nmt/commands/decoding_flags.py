"""The search flags of the commands that decode (translate, evaluate), and the settings they
override."""

from __future__ import annotations

import argparse


def add_decoding_flags(parser: argparse.ArgumentParser, n_best: bool = True) -> None:
    """Adds the search flags; each left out keeps the run's decoding config value.

    Args:
        n_best: also --n-best and --n-best-format (not for `nmt evaluate`, which scores one
            translation per line).
    """
    from nmt.config import DecodingConfig

    group = parser.add_argument_group("search (defaults: the run's decoding config)")
    group.add_argument("--beam-size", type=int, help="beam width K; 1 is greedy search")
    group.add_argument(
        "--length-penalty",
        type=float,
        help="GNMT alpha in lp(Y) = ((5 + |Y|) / 6) ** alpha; 0 disables",
    )
    group.add_argument(
        "--coverage-penalty",
        type=float,
        help="GNMT beta, rewards covering every source token; 0 disables",
    )
    if n_best:
        _add_n_best_flags(group)
    group.add_argument("--batch-size", type=int, help="sentences per search batch")
    group.add_argument(
        "--concurrent-batches",
        type=positive_int,
        help="batches searched side by side, to keep every core busy (1: one at a time; the"
        " translations are the same either way)",
    )
    group.add_argument(
        "--stopping",
        choices=("exact", "heuristic"),
        help="end a sentence's beam search once no live beam could still win ('exact'), or once"
        " none wins with its score now ('heuristic', faster, as OpenNMT-py)",
    )
    group.add_argument(
        "--live-beam",
        choices=("narrowing", "full"),
        help="what a hypothesis that ends does: keeps its beam slot, so fewer stay live"
        " ('narrowing', beam 1 is greedy), or moves to the n-best pool while the K best"
        " unfinished ones stay live ('full', as OpenNMT-py and fairseq)",
    )
    defaults = DecodingConfig()
    group.add_argument(
        "--max-length-ratio",
        type=float,
        help="longest output: this times the source length, plus --max-length-offset tokens"
        f" (new runs default {defaults.max_length_ratio})",
    )
    group.add_argument(
        "--max-length-offset",
        type=int,
        help="tokens added to the longest output allowed, EOS included"
        f" (new runs default {defaults.max_length_offset})",
    )
    group.add_argument(
        "--checkpoint",
        action="append",
        help="checkpoint prefix to load instead of the best one (e.g. RUN/checkpoints/ckpt-4500);"
        " repeat it to decode with an ensemble that averages the models' probabilities",
    )
    group.add_argument(
        "--shortlist",
        help="a lexical shortlist `nmt shortlist` wrote for this run: search each batch over its"
        " candidate pieces only (faster; probabilities normalised over them)",
    )
    group.add_argument(
        "--compute-dtype",
        choices=("float32", "bfloat16", "auto"),
        help="precision the model computes in (weights stay float32); default: the run's"
        " model.compute_dtype. A bfloat16 run decodes faster in float32 on CPUs without"
        " AVX512_BF16 or AMX, where bfloat16 is emulated; auto picks bfloat16 only where the"
        " hardware has it",
    )


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1 (--threads, --concurrent-batches)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _add_n_best_flags(group) -> None:
    """--n-best and --n-best-format, for the commands that write n-best lists."""
    group.add_argument(
        "--n-best",
        type=int,
        help="hypotheses per input; above 1 writes 'INDEX ||| TEXT ||| SCORE', SCORE being"
        " the GNMT score the beam ranks by (log-probability / length penalty + coverage"
        " penalty)",
    )
    group.add_argument(
        "--n-best-format",
        choices=("plain", "moses"),
        default="plain",
        help="plain: 'INDEX ||| TEXT ||| SCORE' (only above --n-best 1); moses: Moses' "
        "'INDEX ||| TEXT ||| F0= SCORE ||| SCORE', for every --n-best",
    )


def decoding_overrides(args: argparse.Namespace) -> dict:
    """The search settings given on the command line, for `Translator.translate`'s overrides."""
    names = (
        "beam_size",
        "length_penalty",
        "coverage_penalty",
        "n_best",
        "batch_size",
        "concurrent_batches",
        "max_length_ratio",
        "max_length_offset",
        "stopping",
        "live_beam",
    )
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}
