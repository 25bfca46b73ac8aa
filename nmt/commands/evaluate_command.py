"""`nmt evaluate`: sacreBLEU scores of translations, translating them first on request."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

from nmt.commands.decoding_flags import add_decoding_flags, decoding_overrides
from nmt.errors import NmtError


def add_parser(
    commands: argparse._SubParsersAction, global_flags: list[argparse.ArgumentParser]
) -> None:
    """Adds `nmt evaluate` to `commands`, accepting the global flags after it too."""
    p = commands.add_parser(
        "evaluate",
        parents=global_flags,
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
    add_decoding_flags(p, n_best=False)
    # Scoring a translated file is sacreBLEU alone: it skips TensorFlow's start-up (seconds).
    p.set_defaults(run=_evaluate, uses_tensorflow=lambda args: args.run_dir is not None)


def _evaluate(args: argparse.Namespace) -> int:
    from nmt.data.text import read_lines
    from nmt.evaluation import score

    references = list(read_lines(args.ref))
    lang, origin = _target_language(args)  # before translating: a missing --lang fails fast
    if args.run_dir:
        hypotheses = _translate_source(args, len(references))
    elif args.hyp:
        _refuse_decoding_flags(args)
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


def _translate_source(args: argparse.Namespace, references: int) -> list[str]:
    """The translations of --source (also written to --hyp if given), translated as `nmt
    translate` does, a batch of lines at a time: only the text is kept for sacreBLEU, never
    the whole file's pieces and search inputs.

    Raises:
        NmtError: no --source, or its line count is not the references' (checked before
            translating).
    """
    from nmt.commands.command_output import output_stream
    from nmt.commands.translate_command import FILE_BATCH_LINES
    from nmt.data.line_batches import fixed_batches
    from nmt.data.text import count_lines, read_lines
    from nmt.decoding.translator import Translator
    from nmt.progress import progress_bar

    if not args.source:
        raise NmtError("--run-dir needs --source, the file to translate")
    lines = count_lines(args.source)
    if lines != references:
        raise NmtError(
            f"--source {args.source} has {lines} lines but --ref {args.ref} has {references}"
        )
    translator = Translator.load(args.run_dir, args.checkpoint, args.compute_dtype, args.shortlist)
    settings = {**decoding_overrides(args), "n_best": 1}
    batches = fixed_batches(read_lines(args.source), FILE_BATCH_LINES)
    hypotheses: list[str] = []
    with contextlib.ExitStack() as stack:
        bar = stack.enter_context(progress_bar(lines, getattr(args, "quiet", False), "translating"))
        out = stack.enter_context(output_stream(args.hyp)) if args.hyp else None
        for batch in translator.translate_batches(batches, bar.update, **settings):
            texts = [nbest[0].text for nbest in batch.nbest]
            hypotheses += texts
            if out is not None:
                out.writelines(text + "\n" for text in texts)
    return hypotheses


def _refuse_decoding_flags(args: argparse.Namespace) -> None:
    """--hyp alone scores a file already translated, so a search or model flag would be
    ignored: refuse it rather than print scores the user thinks it changed."""
    model_flags = ("checkpoint", "shortlist", "compute_dtype")
    given = [*decoding_overrides(args), *(name for name in model_flags if getattr(args, name))]
    if given:
        flags = ", ".join("--" + name.replace("_", "-") for name in given)
        raise NmtError(
            f"{flags} only apply with --run-dir and --source (they change how the "
            f"source is translated); --hyp {args.hyp} is already translated"
        )


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

    corpora = read_saved_config(Path(args.run_dir) / "config.yaml").data.corpora
    targets = [corpus.target for corpus in corpora]
    languages = {language_suffix(target) for target in targets}
    if len(languages) != 1 or None in languages:
        raise NmtError(
            f"cannot tell the target language from the run's training targets "
            f"({', '.join(targets)}: no one language suffix such as train.de.gz); give --lang"
        )
    return languages.pop(), f"from the run's training targets, {Path(targets[0]).name}"


def language_suffix(path: str) -> str | None:
    """'data/train.de.gz' -> 'de' when Moses has rules for that language, else None."""
    from sacremoses.corpus import NonbreakingPrefixes

    name = Path(path).name.removesuffix(".gz")
    suffix = Path(name).suffix.lstrip(".").lower()
    return suffix if suffix in set(NonbreakingPrefixes().available_langs.values()) else None
