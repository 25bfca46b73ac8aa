"""The `nmt` command: one subcommand per user task, each calling one library function."""

from __future__ import annotations

import argparse
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
    result = train(config, args.run_dir, **({"log": _warnings_only} if args.quiet else {}))
    if result.stopped_because == "signal":
        print(
            f"nmt: training interrupted at step {result.steps}; a checkpoint was saved. "
            f"Run the same command again to resume.",
            file=sys.stderr,
        )
        return 128 + (getattr(result, "signal", 0) or signal.SIGINT)
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
        "stopping",
    )
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}


def _translate(args: argparse.Namespace) -> int:
    from nmt.atomic import atomic_path
    from nmt.data.text import read_lines, read_stream, text_io
    from nmt.decoding.translator import Translator

    translator = Translator.load(args.run_dir, args.checkpoint)
    settings = _decoding_overrides(args)
    n_best = settings.get("n_best", translator.decoding.n_best)
    if args.input == "-":
        lines = read_stream(sys.stdin.buffer, "<stdin>", args.errors)
        chunk = 1 if sys.stdin.isatty() else 256
    else:
        lines, chunk = read_lines(args.input, args.errors), 1024
    if args.output == "-":
        _write_translations(
            translator.translate_stream(lines, chunk, **settings),
            text_io(sys.stdout.buffer),
            n_best,
            args.n_best_format,
            flush_each=chunk == 1,
        )
        return 0
    if args.input != "-" and Path(args.input).resolve() == Path(args.output).resolve():
        raise NmtError(f"--output {args.output} is the input file; choose another name")
    # Written under a temporary name: a crash never leaves a half-translated file behind.
    with atomic_path(args.output) as tmp, open(tmp, "wb") as raw:
        out = text_io(raw)
        translations = translator.translate_stream(lines, chunk, **settings)
        _write_translations(translations, out, n_best, args.n_best_format)
        out.flush()
        out.detach()
    return 0


def _write_translations(
    results, out, n_best: int, n_best_format: str = "plain", flush_each: bool = False
) -> None:
    """One line per input, or n lines per input for n-best lists.

    The plain n-best line is 'INDEX ||| TEXT ||| SCORE'; 'moses' writes Moses' n-best format,
    'INDEX ||| TEXT ||| F0= SCORE ||| SCORE' (one feature, the search score, then the total), for
    tools that read Moses n-best lists; it is written even for --n-best 1.
    """
    for index, nbest in enumerate(results):
        if n_best_format == "moses":
            out.writelines(
                f"{index} ||| {h.text} ||| F0= {h.score:.4f} ||| {h.score:.4f}\n" for h in nbest
            )
        elif n_best == 1:
            out.write(nbest[0].text + "\n")
        else:
            out.writelines(f"{index} ||| {h.text} ||| {h.score:.4f}\n" for h in nbest)
        if flush_each:
            out.flush()
    out.flush()


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
        translator = Translator.load(args.run_dir, args.checkpoint)
        hypotheses = translator.translate(
            list(read_lines(args.source)), **_decoding_overrides(args)
        )
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


def _add_decoding_flags(parser: argparse.ArgumentParser, n_best: bool = True) -> None:
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
            help="hypotheses per input; above 1 writes 'INDEX ||| TEXT ||| SCORE' lines",
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
        "--max-length-ratio",
        type=float,
        help="longest output, as a multiple of the source length (plus 10)",
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
