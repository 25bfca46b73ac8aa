"""`nmt translate`: translate a text file, one output line per input line, with n-best lists,
alignments and attention plots on request."""

from __future__ import annotations

import argparse
import contextlib
import itertools
import sys
from collections.abc import Iterator
from pathlib import Path

from nmt.commands.command_output import output_stream
from nmt.commands.decoding_flags import add_decoding_flags, decoding_overrides
from nmt.commands.resumable_output import RECORD_SUFFIX, ResumedOutput, resumed_output
from nmt.errors import NmtError

FILE_BATCH_LINES = 1024  # input lines of a file translated, and written, at a time


def add_parser(
    commands: argparse._SubParsersAction, global_flags: list[argparse.ArgumentParser]
) -> None:
    """Adds `nmt translate` to `commands`, accepting the global flags after it too."""
    p = commands.add_parser(
        "translate",
        parents=global_flags,
        help="translate a text file, one line per line",
        description="Translate text: exactly one output line per input "
        "line, in order (empty in, empty out).",
    )
    p.add_argument("--run-dir", required=True, type=Path, help="run directory of a trained model")
    p.add_argument("--input", default="-", help="text file (plain or .gz), or - for stdin")
    p.add_argument(
        "--output",
        default="-",
        help="output file, or - for stdout; a file appears, under its name, only once complete "
        "(a killed run leaves none and a rerun starts over), unless --resume",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="write --output FILE batch by batch, and if FILE holds the lines of an interrupted "
        "run of this command, translate only the input after its last complete batch, so a "
        "rerun of a killed job ends with one output line per input line. FILE"
        f"{RECORD_SUFFIX} records the input and the flags; a rerun with another input or "
        "other flags is refused (remove FILE to start over). Needs --input FILE",
    )
    p.add_argument(
        "--errors",
        choices=("strict", "replace"),
        default="strict",
        help="invalid UTF-8 input: stop with file:line (strict) or use U+FFFD",
    )
    p.add_argument(
        "--alignments",
        action="store_true",
        help="append ' ||| ' and source-target word alignments from attention to each line, "
        "in Pharaoh format ('0-0 2-1': 0-based source word - target word), as Marian does",
    )
    p.add_argument(
        "--attention-plots",
        type=Path,
        metavar="DIR",
        help="write DIR/<line>.png, a heat map of each sentence's attention (0-based input "
        "line number; needs the [plots] extra, matplotlib)",
    )
    add_decoding_flags(p)
    p.set_defaults(run=_translate)


def _translate(args: argparse.Namespace) -> int:
    from nmt.data.line_batches import available_batches, fixed_batches
    from nmt.data.text import count_lines, read_lines
    from nmt.decoding.translator import Translator
    from nmt.progress import progress_bar

    if args.input != "-" and args.output != "-":
        if Path(args.input).resolve() == Path(args.output).resolve():
            raise NmtError(f"--output {args.output} is the input file; choose another name")
    if args.resume and "-" in (args.input, args.output):
        raise NmtError(
            "--resume needs --input FILE and --output FILE: a pipe cannot be read again "
            "or continued"
        )
    translator = Translator.load(args.run_dir, args.checkpoint, args.compute_dtype, args.shortlist)
    settings = decoding_overrides(args)
    n_best = settings.get("n_best", translator.decoding.n_best)
    # No bar while someone types the input or reads the translations on the same terminal.
    shown = not (sys.stdin.isatty() or (args.output == "-" and sys.stdout.isatty()))
    bar = progress_bar(None, getattr(args, "quiet", False), "translating", shown)
    annotate = _annotator(args, translator)
    with bar, _open_output(args, n_best) as (out, done):
        if args.input == "-":
            # Whatever has arrived: one line for a program that waits, big batches for a file.
            batches = available_batches(sys.stdin.fileno(), "<stdin>", args.errors)
        else:
            lines = itertools.islice(read_lines(args.input, args.errors), done, None)
            batches = fixed_batches(lines, FILE_BATCH_LINES)
            if not bar.disable:
                bar.reset(total=count_lines(args.input) - done)
        results = translator.translate_batches(batches, bar.update, **settings)
        _write_translations(results, out, n_best, args.n_best_format, annotate, done)
    return 0


@contextlib.contextmanager
def _open_output(args: argparse.Namespace, n_best: int) -> Iterator[ResumedOutput]:
    """The output stream and the input lines it already translates (0 unless --resume)."""
    if not args.resume:
        with output_stream(args.output) as out:
            yield ResumedOutput(out, 0)
        return
    with resumed_output(
        Path(args.output), Path(args.input), _output_settings(args), n_best, FILE_BATCH_LINES
    ) as resumed:
        yield resumed


def _output_settings(args: argparse.Namespace) -> dict:
    """The flags that change the output lines, which a resumed run must share with the first
    (--concurrent-batches does not: the translations are the same)."""

    def resolved(path) -> str | None:
        return None if path is None else str(Path(path).resolve())

    settings = decoding_overrides(args)
    settings.pop("concurrent_batches", None)
    return {
        **settings,
        "run_dir": resolved(args.run_dir),
        "checkpoint": [resolved(c) for c in args.checkpoint] if args.checkpoint else None,
        "shortlist": resolved(args.shortlist),
        "compute_dtype": args.compute_dtype,
        "errors": args.errors,
        "n_best_format": args.n_best_format,
        "alignments": args.alignments,
        "attention_plots": resolved(args.attention_plots),
    }


def _annotator(args: argparse.Namespace, translator):
    """`annotate(sources, nbest, first_index)` for --alignments / --attention-plots, or None."""
    if not args.alignments and args.attention_plots is None:
        return None
    from nmt.decoding.alignment import annotate_batch
    from nmt.decoding.scoring import ForcedDecoder

    if args.attention_plots is not None:
        args.attention_plots.mkdir(parents=True, exist_ok=True)
    decoder = ForcedDecoder.from_translator(translator, args.batch_size)

    def annotate(sources, nbest, first_index):
        links = annotate_batch(
            decoder, sources, nbest, first_index, args.alignments, args.attention_plots
        )
        return links if args.alignments else None

    return annotate


def _write_translations(
    batches, out, n_best: int, n_best_format: str = "plain", annotate=None, first_index: int = 0
) -> None:
    """One line per input, or n lines per input for n-best lists, flushed after every batch so
    a program waiting for its line gets it.

    The plain n-best line is 'INDEX ||| TEXT ||| SCORE', SCORE the GNMT score of
    `Hypothesis.score`; 'moses' writes Moses' n-best format, 'INDEX ||| TEXT ||| F0= SCORE |||
    SCORE' (one feature, the search score, then the total), for tools that read Moses n-best
    lists, even for --n-best 1. With alignments each line ends in ' ||| ' and Pharaoh links, as
    Marian's --alignment writes. `first_index` is the 0-based input line number of the first
    batch's first line (INDEX and plot names count from it).
    """
    index = first_index
    for batch in batches:
        links = annotate(batch.sources, batch.nbest, index) if annotate else None
        for row, nbest in enumerate(batch.nbest):
            for rank, hypothesis in enumerate(nbest):
                line, score = hypothesis.text, hypothesis.score
                if n_best_format == "moses":
                    line = f"{index + row} ||| {line} ||| F0= {score:.4f} ||| {score:.4f}"
                elif n_best > 1:
                    line = f"{index + row} ||| {line} ||| {score:.4f}"
                if links is not None:
                    line += f" ||| {links[row][rank]}"
                out.write(line + "\n")
        index += len(batch.nbest)
        out.flush()
