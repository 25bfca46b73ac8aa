"""The `nmt` command: one subcommand per user task, each calling one library function."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
from pathlib import Path

from nmt.errors import NmtError

# Exit statuses: 0 done, 1 an error the user can fix (NmtError), 2 a command-line usage error
# (argparse's own), 128 + N stopped by signal N (130 Ctrl-C, 143 SIGTERM).
EXIT_ERROR = 1
DISTRIBUTION = "gnmt-keras"  # the name on the package index; `import nmt` and `nmt` stay


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


def _decoding_overrides(args: argparse.Namespace) -> dict:
    names = (
        "beam_size",
        "length_penalty",
        "coverage_penalty",
        "n_best",
        "batch_size",
        "max_length_ratio",
        "max_length_offset",
        "stopping",
        "live_beam",
    )
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}


def _translate(args: argparse.Namespace) -> int:
    from nmt.data.line_batches import available_batches, fixed_batches
    from nmt.data.text import count_lines, read_lines
    from nmt.decoding.translator import Translator
    from nmt.progress import progress_bar

    translator = Translator.load(args.run_dir, args.checkpoint)
    settings = _decoding_overrides(args)
    n_best = settings.get("n_best", translator.decoding.n_best)
    if args.input != "-" and args.output != "-":
        if Path(args.input).resolve() == Path(args.output).resolve():
            raise NmtError(f"--output {args.output} is the input file; choose another name")
    # No bar while someone types the input or reads the translations on the same terminal.
    shown = not (sys.stdin.isatty() or (args.output == "-" and sys.stdout.isatty()))
    bar = progress_bar(None, getattr(args, "quiet", False), "translating", shown)
    if args.input == "-":
        # Whatever has arrived: one line for a program that waits, big batches for a file.
        batches = available_batches(sys.stdin.fileno(), "<stdin>", args.errors)
    else:
        batches = fixed_batches(read_lines(args.input, args.errors), 1024)
        if not bar.disable:
            bar.reset(total=count_lines(args.input))
    annotate = _annotator(args, translator)
    with bar, _output_stream(args.output) as out:
        results = translator.translate_batches(batches, bar.update, **settings)
        _write_translations(results, out, n_best, args.n_best_format, annotate)
    return 0


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


@contextlib.contextmanager
def _output_stream(path: str):
    """A UTF-8 text stream to stdout ("-") or to a file written under a temporary name, so a
    crash never leaves a half-written file behind."""
    from nmt.atomic import atomic_path
    from nmt.data.text import text_io

    if path == "-":
        yield text_io(sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return
    with atomic_path(path) as tmp, open(tmp, "wb") as raw:
        out = text_io(raw)
        yield out
        out.flush()
        out.detach()


def _write_translations(
    batches, out, n_best: int, n_best_format: str = "plain", annotate=None
) -> None:
    """One line per input, or n lines per input for n-best lists, flushed after every batch so
    a program waiting for its line gets it.

    The plain n-best line is 'INDEX ||| TEXT ||| SCORE', SCORE the GNMT score of
    `Hypothesis.score`; 'moses' writes Moses' n-best format, 'INDEX ||| TEXT ||| F0= SCORE |||
    SCORE' (one feature, the search score, then the total), for tools that read Moses n-best
    lists, even for --n-best 1. With alignments each line ends in ' ||| ' and Pharaoh links, as
    Marian's --alignment writes.
    """
    index = 0
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
    with bar, _output_stream(args.output) as out:
        # Chunks bound the memory; inside one, pairs are sorted by length into batches.
        for chunk in fixed_batches(read_parallel(args.source, args.target), 10_000):
            sources, targets = zip(*chunk)
            for pair in decoder.score(sources, targets, bar.update):
                out.write(format_score(pair, args.per_piece) + "\n")
            out.flush()
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from nmt.data.text import read_lines
    from nmt.evaluation import score

    references = list(read_lines(args.ref))
    lang, origin = _target_language(args)  # before translating: a missing --lang fails fast
    if args.run_dir:
        from nmt.atomic import atomic_write_text
        from nmt.decoding.translator import Translator

        if not args.source:
            raise NmtError("--run-dir needs --source, the file to translate")
        from nmt.progress import progress_bar

        translator = Translator.load(args.run_dir, args.checkpoint)
        sources = list(read_lines(args.source))
        with progress_bar(len(sources), getattr(args, "quiet", False), "translating") as bar:
            hypotheses = translator.translate(sources, bar.update, **_decoding_overrides(args))
        if args.hyp:
            atomic_write_text(args.hyp, "".join(h + "\n" for h in hypotheses))
    elif args.hyp:
        hypotheses = list(read_lines(args.hyp))
    else:
        raise NmtError("give --hyp (a translated file) or --run-dir and --source")
    results = score(hypotheses, references, lang=lang or "en")
    if lang is None:
        del results["bleu_tokenized"]
    else:
        results["bleu_tokenized"]["lang"] = lang
    if args.baseline:
        from nmt.evaluation import paired_bootstrap

        baseline = list(read_lines(args.baseline))
        if len(baseline) != len(references):
            raise NmtError(
                f"--baseline {args.baseline} has {len(baseline)} lines but --ref {args.ref} "
                f"has {len(references)}"
            )
        results["paired_bootstrap"] = paired_bootstrap(hypotheses, baseline, references)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        _print_scores(results, origin)
    if lang is None:
        print(
            "nmt: no lowercased Moses-tokenized BLEU: give --lang, the target language",
            file=sys.stderr,
        )
    return 0


def _print_scores(results: dict, lang_origin: str) -> None:
    """The scores of `nmt evaluate` as text: one line per metric with its signature."""
    labels = (("bleu", "BLEU"), ("chrf", "chrF"), ("ter", "TER"), ("bleu_tokenized", "BLEU lc-tok"))
    for key, label in labels:
        if key in results:
            print(f"{label:<12} {results[key]['score']:6.2f}   {results[key]['signature']}")
    if "bleu_tokenized" in results:
        lang = results["bleu_tokenized"]["lang"]
        print(f"Moses tokenization for lc-tok: {lang} ({lang_origin})")
    if "paired_bootstrap" in results:
        test = results["paired_bootstrap"]
        ours, base = test["system"], test["baseline"]
        print(
            f"paired bootstrap: BLEU {ours['mean']:.2f} ± {ours['ci']:.2f} vs baseline "
            f"{base['mean']:.2f} ± {base['ci']:.2f} (95% CI), p = {test['p_value']:.4f}   "
            f"{test['signature']}"
        )


def _target_language(args: argparse.Namespace) -> tuple[str | None, str]:
    """The target language for Moses tokenization and where it came from.

    English rules on German text split and lowercase differently, so the language is never
    guessed: --lang, else the language suffix of the run's target file (`train.de.gz` -> de,
    as the recipes name them), else none.

    Raises:
        NmtError: --run-dir is given but its target file names no language Moses knows.
    """
    if args.lang:
        return args.lang, "--lang"
    if not args.run_dir:
        return None, ""
    from nmt.config import read_saved_config

    target = read_saved_config(Path(args.run_dir) / "config.yaml").data.train_target
    lang = _language_suffix(target)
    if lang is None:
        raise NmtError(
            f"cannot tell the target language from the run's data.train_target {target} "
            "(no language suffix such as train.de.gz); give --lang"
        )
    return lang, f"from the run's data.train_target, {Path(target).name}"


def _language_suffix(path: str) -> str | None:
    """'data/train.de.gz' -> 'de' when Moses has rules for that language, else None."""
    from sacremoses.corpus import NonbreakingPrefixes

    name = Path(path).name.removesuffix(".gz")
    suffix = Path(name).suffix.lstrip(".").lower()
    return suffix if suffix in set(NonbreakingPrefixes().available_langs.values()) else None


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


def _average(args: argparse.Namespace) -> int:
    from nmt.training.averaging import average_checkpoints

    path = average_checkpoints(args.run_dir, args.checkpoint or None, args.last, report=print)
    print(f"averaged checkpoint: {path}")
    print(f"use it with: nmt translate --run-dir {args.run_dir} --checkpoint {path}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from nmt.demo import run_demo

    scores = run_demo(args.run_dir, args.max_steps)
    bleu = scores["bleu"]
    print(
        f"toy test set: BLEU {bleu['score']:.2f} ({bleu['signature']}), "
        f"chrF {scores['chrf']['score']:.2f}"
    )
    print(f"the run directory {args.run_dir} works with `nmt translate --run-dir {args.run_dir}`")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from nmt.decoding.translator import Translator
    from nmt.serving.protocol import RequestLimits
    from nmt.serving.server import ServeOptions, run_name, serve

    options = ServeOptions(
        limits=RequestLimits(
            max_lines=args.max_lines,
            max_line_chars=args.max_line_chars,
            max_body_bytes=args.max_body_bytes,
            max_beam_size=args.max_beam_size,
        ),
        batch_window_ms=args.batch_window_ms,
        max_batch_sentences=args.max_batch_sentences,
        max_queued_sentences=args.max_queued_sentences,
        shutdown_timeout=args.shutdown_timeout,
        access_log=args.access_log,
    )
    translator = Translator.load(args.run_dir, args.checkpoint)
    serve(translator, run_name(args.run_dir), args.host, args.port, options)
    return 0


def _add_serve_flags(parser: argparse.ArgumentParser) -> None:
    batching = parser.add_argument_group("batching")
    batching.add_argument(
        "--batch-window-ms",
        type=float,
        default=5.0,
        help="how long the oldest waiting request waits for others to share its batch (default 5)",
    )
    batching.add_argument(
        "--max-batch-sentences",
        type=int,
        default=32,
        help="sentences decoded together at most; a larger request is its own batch (default 32)",
    )
    batching.add_argument(
        "--max-queued-sentences",
        type=int,
        default=2048,
        help="sentences allowed to wait; beyond it requests get 503 and Retry-After (default 2048)",
    )
    limits = parser.add_argument_group("request limits (larger requests get 413)")
    limits.add_argument("--max-lines", type=int, default=64, help="lines per request (default 64)")
    limits.add_argument(
        "--max-line-chars", type=int, default=2000, help="characters per line (default 2000)"
    )
    limits.add_argument(
        "--max-body-bytes", type=int, default=1 << 20, help="request body bytes (default 1 MiB)"
    )
    limits.add_argument(
        "--max-beam-size",
        type=int,
        default=16,
        help="largest beam_size a request may ask for (default 16)",
    )
    parser.add_argument(
        "--shutdown-timeout",
        type=float,
        default=60.0,
        help="on SIGTERM, seconds to let requests in flight finish before cancelling them",
    )
    parser.add_argument(
        "--access-log", action="store_true", help="log every request to stderr (uvicorn's log)"
    )


def _export(args: argparse.Namespace) -> int:
    from nmt.export.exporter import export_model

    names = (
        "beam_size",
        "length_penalty",
        "coverage_penalty",
        "max_length_ratio",
        "max_length_offset",
        "stopping",
        "batch_size",
    )
    overrides = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    path = export_model(
        args.run_dir, args.output, args.checkpoint, args.format, args.quantize, **overrides
    )
    print(f"exported {args.format} to {path}")
    return 0


def _add_export_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run-dir", required=True, type=Path, help="run directory to export")
    parser.add_argument(
        "--checkpoint",
        action="append",
        help="checkpoint prefix instead of the best one; repeat it for an ensemble "
        "(saved_model only)",
    )
    parser.add_argument(
        "--output", required=True, type=Path, help="folder to write (replaced only on success)"
    )
    parser.add_argument(
        "--format",
        choices=("saved_model", "litert"),
        default="saved_model",
        help="saved_model: text in, text out, for TensorFlow Serving; litert: model.tflite "
        "plus SentencePiece files and a Python runner, greedy search (default: saved_model)",
    )
    parser.add_argument(
        "--quantize",
        choices=("int8",),
        help="litert only: store weights as int8 (dynamic-range quantization)",
    )
    group = parser.add_argument_group("search baked into the export (defaults: the run's config)")
    group.add_argument("--beam-size", type=int, help="beam width K; 1 is greedy (litert: 1 only)")
    group.add_argument("--length-penalty", type=float, help="GNMT alpha; 0 disables")
    group.add_argument("--coverage-penalty", type=float, help="GNMT beta; 0 disables")
    group.add_argument(
        "--max-length-ratio", type=float, help="longest output as a multiple of the source length"
    )
    group.add_argument(
        "--max-length-offset", type=int, help="tokens added to that longest output length"
    )
    group.add_argument(
        "--stopping", choices=("exact", "heuristic"), help="when a beam search ends a sentence"
    )
    group.add_argument(
        "--batch-size", type=int, help="sentences per search batch inside the SavedModel"
    )


def _add_decoding_flags(parser: argparse.ArgumentParser, n_best: bool = True) -> None:
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
    group.add_argument("--batch-size", type=int, help="sentences per search batch")
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


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _global_flags(after_command: bool) -> argparse.ArgumentParser:
    """--debug, --quiet and --threads, accepted before the subcommand and after it.

    After it they default to SUPPRESS, so a subcommand that does not repeat a flag leaves the
    value given before the subcommand in place.
    """

    def default(value):
        return argparse.SUPPRESS if after_command else value

    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group("global options (before or after COMMAND)")
    group.add_argument(
        "--debug",
        action="store_true",
        default=default(False),
        help="show full Python tracebacks (and TensorFlow's start-up log) instead of one-line "
        "errors",
    )
    group.add_argument(
        "--quiet",
        action="store_true",
        default=default(False),
        help="no progress output (training log lines, progress bars); results, warnings and "
        "errors still print",
    )
    group.add_argument(
        "--threads",
        type=_positive_int,
        default=default(None),
        metavar="N",
        help="TensorFlow's intra-op and inter-op thread pools, N threads each (default: "
        "TensorFlow's choice, about one per core)",
    )
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:  # a source checkout on PYTHONPATH, not installed
        from nmt import __version__

        return __version__


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand (each flag documented for --help)."""
    parser = argparse.ArgumentParser(
        prog="nmt",
        description="GNMT-style LSTM neural machine translation (Keras 3 / TensorFlow).",
        parents=[_global_flags(after_command=False)],
    )
    parser.add_argument("--version", action="version", version=f"nmt {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    flags = [_global_flags(after_command=True)]

    p = commands.add_parser(
        "train",
        parents=flags,
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

    p = commands.add_parser(
        "translate",
        parents=flags,
        help="translate a text file, one line per line",
        description="Translate text: exactly one output line per input "
        "line, in order (empty in, empty out).",
    )
    p.add_argument("--run-dir", required=True, type=Path, help="run directory of a trained model")
    p.add_argument("--input", default="-", help="text file (plain or .gz), or - for stdin")
    p.add_argument("--output", default="-", help="output file, or - for stdout")
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
    _add_decoding_flags(p)
    p.set_defaults(run=_translate)

    p = commands.add_parser(
        "evaluate",
        parents=flags,
        help="score translations with sacreBLEU",
        description="Print BLEU, chrF, TER (sacreBLEU, with signatures) and "
        "lowercased Moses-tokenized BLEU. Give --hyp, or --run-dir and "
        "--source to translate and score in one go.",
    )
    p.add_argument("--ref", required=True, help="reference translations, one per line")
    p.add_argument("--hyp", help="system translations (with --run-dir: where to write them)")
    p.add_argument("--run-dir", type=Path, help="translate --source with this model first")
    p.add_argument("--source", help="source file to translate with --run-dir")
    p.add_argument(
        "--lang",
        help="target language code (de, fr, ...) of the lowercased Moses-tokenized BLEU; "
        "default: the suffix of the run's target file with --run-dir (train.de.gz: de), "
        "else that score is left out",
    )
    p.add_argument("--json", action="store_true", help="print the scores as JSON")
    p.add_argument(
        "--baseline",
        help="another system's translations of the same source: adds a paired bootstrap test "
        "(1000 resamples) of whether the BLEU difference is significant",
    )
    _add_decoding_flags(p, n_best=False)
    p.set_defaults(run=_evaluate)

    p = commands.add_parser(
        "score",
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

    p = commands.add_parser(
        "sweep",
        parents=flags,
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

    p = commands.add_parser(
        "average",
        parents=flags,
        help="average the weights of several checkpoints",
        description="Write the mean of several checkpoints' weights to RUN_DIR/averaged/.",
    )
    p.add_argument("--run-dir", required=True, type=Path, help="run directory of a trained model")
    p.add_argument(
        "--last", type=int, default=3, help="average the newest N training checkpoints (default 3)"
    )
    p.add_argument(
        "--checkpoint",
        action="append",
        default=[],
        help="a checkpoint prefix to average instead (repeatable)",
    )
    p.set_defaults(run=_average)

    p = commands.add_parser(
        "demo",
        parents=flags,
        help="train and score the built-in toy task (no download)",
        description="Generate the toy English->German number-words task, "
        "train a small model, translate its held-out test set, print BLEU.",
    )
    p.add_argument(
        "--run-dir",
        type=Path,
        default=Path("runs/demo"),
        help="where to put the toy data and the run (default: runs/demo)",
    )
    p.add_argument("--max-steps", type=int, help="training steps (default: the demo's 1200)")
    p.set_defaults(run=_demo)

    p = commands.add_parser(
        "serve",
        help="serve a trained model over HTTP (POST /translate, GET /health)",
        description='Answer POST /translate with JSON {"text": [...]} (and optional search '
        'settings) with {"translations": [...], "scores": [...]}; requests arriving '
        "together are decoded together. SIGTERM answers the requests in flight, then exits.",
    )
    p.add_argument("--run-dir", required=True, type=Path, help="run directory of a trained model")
    p.add_argument(
        "--checkpoint",
        action="append",
        help="checkpoint prefix instead of the best one; repeat for an ensemble",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument(
        "--port", type=int, default=8080, help="TCP port (default 8080; 0 picks a free one)"
    )
    _add_serve_flags(p)
    p.set_defaults(run=_serve)

    p = commands.add_parser(
        "export",
        help="export a trained model as a SavedModel or a LiteRT model",
        description="Write a SavedModel (text in, text out, SentencePiece in the graph) or a "
        "LiteRT model folder (model.tflite, SentencePiece files, a Python runner). The folder "
        "is written under a temporary name and renamed when complete.",
    )
    _add_export_flags(p)
    p.set_defaults(run=_export)
    return parser


def _import_tensorflow_quietly() -> None:
    """Imports TensorFlow with stderr silenced at the file-descriptor level.

    TensorFlow's C++ start-up (CUDA probing on CPU-only machines, absl's pre-init notice) writes
    to fd 2 regardless of TF_CPP_MIN_LOG_LEVEL, burying our one-line messages.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow as tf

        tf.config.list_physical_devices()  # device discovery logs too; do it now, silently
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _set_threads(threads: int | None) -> None:
    """Sizes TensorFlow's thread pools; only possible before its first op runs."""
    if threads is None:
        return
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.quiet:
        os.environ["NMT_QUIET"] = "1"  # for progress bars below the CLI, and child processes
    try:
        if not args.debug:
            _import_tensorflow_quietly()
        _set_threads(args.threads)
        return args.run(args)
    except NmtError as error:
        if args.debug:
            raise
        print(f"nmt: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("nmt: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT
    except BrokenPipeError:  # `nmt translate | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
