"""`nmt export`: load a run, apply search overrides, write the chosen format atomically."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from nmt.errors import NmtError
from nmt.export.staging import staged_directory

FORMATS = ("saved_model", "litert")


def export_model(
    run_dir: str | Path,
    output: str | Path,
    checkpoint: str | Sequence[str] | None = None,
    export_format: str = "saved_model",
    quantize: str | None = None,
    **overrides,
) -> Path:
    """Exports a trained run for serving (SavedModel) or on-device use (LiteRT).

    The export is written into a temporary folder beside `output` and renamed into place when
    complete; an existing `output` is replaced only then (see `staging`).

    Args:
        run_dir: the run directory (config, tokenizer, checkpoints).
        output: the folder to write.
        checkpoint: checkpoint prefix(es) instead of the best one; several make an ensemble
            (SavedModel only).
        export_format: "saved_model" or "litert".
        quantize: "int8" for dynamic-range int8 weights (LiteRT only), or None.
        **overrides: `DecodingConfig` fields that replace the run's decoding config (beam_size,
            length_penalty, coverage_penalty, max_length_ratio, max_length_offset, stopping,
            batch_size).

    Returns:
        The output folder.

    Raises:
        NmtError: an unknown format, int8 for a SavedModel, or what loading the run raises.
    """
    if export_format not in FORMATS:
        raise NmtError(f"--format must be one of {', '.join(FORMATS)}, got {export_format!r}")
    if quantize not in (None, "int8"):
        raise NmtError(f"--quantize must be int8, got {quantize!r}")
    if quantize and export_format != "litert":
        raise NmtError("--quantize int8 applies to --format litert only")
    from nmt.decoding.translator import Translator

    translator = Translator.load(run_dir, checkpoint)
    if export_format == "litert":
        overrides.setdefault("beam_size", 1)  # the runner searches greedily
    # A bad override raises ConfigError (an NmtError) naming the decoding.* key.
    settings = dataclasses.replace(translator.decoding, n_best=1, **overrides)
    tokenizer_dir = Path(run_dir) / "tokenizer"
    output = Path(output)
    with staged_directory(output) as tmp:
        if export_format == "saved_model":
            from nmt.export import saved_model

            saved_model.save(translator, settings, tokenizer_dir, tmp)
        else:
            from nmt.export import litert

            litert.save(translator, settings, tokenizer_dir, tmp, quantize)
    return output
