"""`nmt export`: write a trained model as a SavedModel or a LiteRT model folder."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(
    commands: argparse._SubParsersAction, global_flags: list[argparse.ArgumentParser]
) -> None:
    """Adds `nmt export` to `commands`, accepting the global flags after it too."""
    p = commands.add_parser(
        "export",
        parents=global_flags,
        help="export a trained model as a SavedModel or a LiteRT model",
        description="Write a SavedModel (text in, text out, SentencePiece in the graph) or a "
        "LiteRT model folder (model.tflite, SentencePiece files, a Python runner). The folder "
        "is written under a temporary name and renamed when complete.",
    )
    _add_export_flags(p)
    p.set_defaults(run=_export)


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
