"""Size, cold one-sentence latency and test BLEU of every export form beside `nmt translate`.

    python tools/export_benchmark.py RUN_DIR --source test.en.gz --ref test.de.gz \\
        [--checkpoint P] [--lang de] [--workdir DIR] [--repeats 3]

Exports the run (SavedModel with the run's beam search and greedy, LiteRT float and int8) into
--workdir, then for each form and for `nmt translate` measures:
- size: the files a consumer ships (checkpoint + tokenizer for `nmt`, the export folder else);
- latency: a fresh process that loads the model and translates one sentence (the source's first
  line), wall clock, median of --repeats (cold: import, load, trace and translate);
- BLEU: cased sacreBLEU of the whole source against --ref, and the seconds that took.
Prints a Markdown table. Numbers depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import NamedTuple

from nmt.config import read_saved_config
from nmt.data.text import read_lines
from nmt.evaluation import score

SAVED_MODEL_CLIENT = textwrap.dedent(
    """\
    import json, sys
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (SentencePiece ops)

    model = tf.saved_model.load(sys.argv[1])
    lines = open(sys.argv[2], encoding="utf-8").read().split("\\n")[:-1]
    out = []
    for start in range(0, len(lines), 1000):
        batch = tf.constant(lines[start : start + 1000], tf.string)
        found = model.signatures["serving_default"](text=batch)["translations"].numpy()
        out += [t.decode("utf-8") for t in found]
    sys.stdout.write("".join(t + "\\n" for t in out))
    """
)


class Form(NamedTuple):
    name: str
    search: str
    size: int  # bytes
    command: list[str]  # the source file is appended as the last argument
    stdin: bool = False  # or fed on stdin instead


class Row(NamedTuple):
    name: str
    search: str
    size_mb: float
    latency_s: float
    bleu: float
    test_seconds: float


def _folder_size(paths: list[Path]) -> int:
    files = [f for p in paths for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file()]
    return sum(f.stat().st_size for f in files)


def _checkpoint_files(run_dir: Path, checkpoint: str | None) -> list[Path]:
    if checkpoint is None:
        best = run_dir / "best"
        prefixes = sorted(best.glob("*.index"))
        if not prefixes:
            raise SystemExit(f"{best}: no checkpoint; pass --checkpoint")
        checkpoint = str(prefixes[-1])[: -len(".index")]
    return [Path(p) for p in Path(checkpoint).parent.glob(Path(checkpoint).name + ".*")]


def _export(run_dir: Path, checkpoint: str | None, out: Path, *flags: str) -> Path:
    args = [sys.executable, "-m", "nmt", "export", "--run-dir", str(run_dir)]
    args += ["--output", str(out), *flags]
    if checkpoint:
        args += ["--checkpoint", checkpoint]
    subprocess.run(args, check=True)
    return out


def _forms(run_dir: Path, checkpoint: str | None, workdir: Path, beam: int) -> list[Form]:
    """Exports every form and says how to run it."""
    py = sys.executable
    ckpt = ["--checkpoint", checkpoint] if checkpoint else []
    translate = [py, "-m", "nmt", "translate", "--run-dir", str(run_dir), *ckpt, "--input"]
    nmt_size = _folder_size(_checkpoint_files(run_dir, checkpoint) + [run_dir / "tokenizer"])
    client = workdir / "saved_model_client.py"
    client.write_text(SAVED_MODEL_CLIENT)
    forms = [
        Form("nmt translate", f"beam {beam}", nmt_size, translate),
        Form("nmt translate", "greedy", nmt_size, [*translate[:-1], "--beam-size", "1", "--input"]),
    ]
    for name, flags in ((f"beam {beam}", []), ("greedy", ["--beam-size", "1"])):
        folder = _export(run_dir, checkpoint, workdir / f"saved_model_{name[0]}", *flags)
        forms.append(
            Form("SavedModel", name, _folder_size([folder]), [py, str(client), str(folder)])
        )
    for label, flags in (("LiteRT float32", []), ("LiteRT int8", ["--quantize", "int8"])):
        folder = workdir / label.split()[1]
        _export(run_dir, checkpoint, folder, "--format", "litert", *flags)
        runner = [py, str(folder / "litert_runner.py"), str(folder)]
        forms.append(Form(label, "greedy", _folder_size([folder]), runner, stdin=True))
    return forms


def _run(form: Form, source: Path) -> tuple[list[str], float]:
    """Runs `form` on a source file in a fresh process: its output lines and wall seconds."""
    start = time.perf_counter()
    with open(source, "rb") as stdin:
        command = form.command if form.stdin else [*form.command, str(source)]
        result = subprocess.run(
            command, stdin=stdin if form.stdin else None, capture_output=True, check=False
        )
    if result.returncode:
        raise SystemExit(f"{form.name} failed:\n{result.stderr.decode()[-3000:]}")
    return result.stdout.decode("utf-8").split("\n")[:-1], time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path, help="trained run directory")
    parser.add_argument("--checkpoint", help="checkpoint prefix (default: the run's best)")
    parser.add_argument("--source", type=Path, required=True, help="test source (plain or .gz)")
    parser.add_argument("--ref", type=Path, required=True, help="test references")
    parser.add_argument("--lang", default="de", help="target language for sacreBLEU's tokenizer")
    parser.add_argument("--workdir", type=Path, help="where exports go (default: a temp folder)")
    parser.add_argument("--repeats", type=int, default=3, help="cold latency runs per form")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="export-benchmark."))
    workdir.mkdir(parents=True, exist_ok=True)
    lines = list(read_lines(args.source))
    references = list(read_lines(args.ref))
    source, one = workdir / "source.txt", workdir / "one.txt"
    source.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    one.write_text(lines[0] + "\n", encoding="utf-8")
    beam = read_saved_config(args.run_dir / "config.yaml").decoding.beam_size

    rows = []
    for form in _forms(args.run_dir, args.checkpoint, workdir, beam):
        latency = statistics.median(_run(form, one)[1] for _ in range(args.repeats))
        hypotheses, seconds = _run(form, source)
        bleu = score(hypotheses, references, lang=args.lang)["bleu"]["score"]
        rows.append(Row(form.name, form.search, form.size / 1e6, latency, bleu, seconds))
        print(rows[-1], file=sys.stderr, flush=True)
    print("| form | search | size (MB) | one sentence, cold (s) | test BLEU | test set (s) |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {r.name} | {r.search} | {r.size_mb:.1f} | {r.latency_s:.2f} | {r.bleu:.2f} "
            f"| {r.test_seconds:.1f} |"
        )
    if args.json:
        args.json.write_text(json.dumps([r._asdict() for r in rows], indent=2) + "\n")


if __name__ == "__main__":
    main()
