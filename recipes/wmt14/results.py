#!/usr/bin/env python3
"""Summarise a finished WMT14 en-de run directory as Markdown (printed): scores with sacreBLEU's
signatures, GNMT's score for reference, the training, the search and the training data."""

from __future__ import annotations

import json
import re
import statistics
import sys
from pathlib import Path

import yaml

SPLITS = {"newstest2013": "dev", "newstest2014": "test"}
# Wu et al. (2016), WPM-32K, 8 + 8 layers: BLEU of tokenized text (multi-bleu.perl), which
# reads higher than sacreBLEU's 13a on detokenized text, so the two are not the same scale.
GNMT_BLEU = 24.61


def main(run_dir: str, data_dir: str) -> int:
    run, data = Path(run_dir), Path(data_dir)
    if not (run / "config.yaml").is_file():
        print(f"results.py: {run} holds no config.yaml: no model trained there", file=sys.stderr)
        return 1
    decoding = yaml.safe_load((run / "config.yaml").read_text())["decoding"]
    print(f"# WMT14 English→German: {run}\n")
    print("| set | BLEU | chrF2 | TER | BLEU lc-tok | decode wall (s) |")
    print("| --- | --- | --- | --- | --- | --- |")
    signatures = {}
    for split, role in SPLITS.items():
        path = run / f"{split}.scores.json"
        if not path.is_file():
            continue
        scores = json.loads(path.read_text())
        seconds = (run / f"{split}.decode_wall_seconds.txt").read_text().strip()
        print(
            f"| {split} ({role}) | {scores['bleu']['score']:.2f} | {scores['chrf']['score']:.2f} |"
            f" {scores['ter']['score']:.2f} | {scores['bleu_tokenized']['score']:.2f} | {seconds} |"
        )
        signatures = {name: value["signature"] for name, value in scores.items()}
    print()
    for name, signature in signatures.items():
        print(f"- {_LABELS.get(name, name)} signature: `{signature}`")
    print(
        f"- for reference, GNMT (Wu et al., 2016), 8 + 8 layers, 32k wordpieces: {GNMT_BLEU} BLEU"
        " on newstest2014, on tokenized text (not sacreBLEU's scale)\n"
    )
    wall = (run / "train_wall_seconds.txt").read_text().strip()
    print(
        f"- training wall time: {int(wall) / 60:.1f} min (every run.sh that trained here:"
        " start-up, validation and checkpoints included)"
    )
    print(f"- training: {_training_summary(run)}")
    average = run / "average.txt"
    if average.is_file():
        checkpoint = re.findall(r"^averaged checkpoint: (.+)$", average.read_text(), re.MULTILINE)
        print(f"- decoded with: `{checkpoint[-1] if checkpoint else '?'}` (nmt average --last 3)")
    print(
        f"- search: beam {decoding['beam_size']}, length penalty {decoding['length_penalty']},"
        f" coverage penalty {decoding['coverage_penalty']}"
    )
    cleaning = data / "cleaning.json"
    if cleaning.is_file():
        corpora = json.loads(cleaning.read_text())["corpora"]
        kept = ", ".join(f"{name} {c['kept']:,} of {c['read']:,}" for name, c in corpora.items())
        print(f"- training pairs kept by prepare.py: {kept} (`{data / 'cleaning.md'}`)")
    return 0


_LABELS = {"bleu": "BLEU", "chrf": "chrF2", "ter": "TER", "bleu_tokenized": "BLEU lc-tok"}


def _training_summary(run: Path) -> str:
    """The training as its train.log tells it: steps, clock, throughput, size."""
    log = (run / "train.log").read_text() if (run / "train.log").is_file() else ""
    speeds = [float(s.replace(",", "")) for s in re.findall(r"\| ([\d,]+) tgt tok/s", log)]
    params = re.findall(r"model: ([\d,]+) parameters", log)
    stops = re.findall(r"stopped at step (\d+) \((\w+)\)", log)
    clocks = re.findall(r"tgt tok/s \| (\d+:\d\d:\d\d)", log)
    parts = []
    if stops:
        parts.append(f"stopped at step {stops[-1][0]} ({stops[-1][1]})")
    if clocks:
        parts.append(f"training clock {clocks[-1]} at the last logged step")
    if speeds:
        median = statistics.median(speeds[1:] or speeds)
        parts.append(f"median {median:,.0f} target tokens/s (first window excluded)")
    if params:
        parts.append(f"{params[-1]} parameters")
    return "; ".join(parts) or "no training logged"


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: results.py RUN_DIR DATA_DIR")
    sys.exit(main(*sys.argv[1:]))
