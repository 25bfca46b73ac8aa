#!/usr/bin/env python3
"""Summarise a finished Multi30k run directory as a Markdown results table (printed)."""

from __future__ import annotations

import json
import re
import statistics
import sys
from pathlib import Path

import yaml

# In run.sh's order; the last three only where their files were there to decode.
SPLITS = ("val", "test_2016_flickr", "test_2017_flickr", "test_2017_mscoco", "test_2018_flickr")


def main(run_dir: str, *member_dirs: str) -> int:
    """member_dirs: the seeds' run directories this run decoded (default: every seed-N there)."""
    run = Path(run_dir)
    members = [Path(member) for member in member_dirs] or sorted(
        (path.parent for path in run.glob("seed-*/config.yaml")),
        key=lambda member: int(member.name.removeprefix("seed-")),
    )
    if not members:
        print(
            f"results.py: {run} holds no seed-N/config.yaml: no model trained there",
            file=sys.stderr,
        )
        return 1
    config = yaml.safe_load((members[0] / "config.yaml").read_text())
    wall = (run / "train_wall_seconds.txt").read_text().strip()
    decoded = run / "decoded_checkpoints.txt"
    decoding = config["decoding"]
    print(f"# Results for {run}\n")
    print(
        f"- training wall time: {int(wall) / 60:.1f} min (the seeds side by side, from the first"
        " `nmt train` start to the last one's end, summed over every run.sh that trained here:"
        " start-up, validation and checkpoints included)"
    )
    for member in members:
        print(f"- {member.name}: {_training_summary(member)}")
    if decoded.is_file():
        checkpoints = decoded.read_text().split()
        print(
            f"- decoded with: {', '.join(f'`{c}`' for c in checkpoints)}"
            + (" (an ensemble)" if len(checkpoints) > 1 else "")
        )
    print(
        f"- search: beam {decoding['beam_size']}, length penalty {decoding['length_penalty']}, "
        f"coverage penalty {decoding['coverage_penalty']}\n"
    )
    print("| split | BLEU | chrF | TER | BLEU lc-tok | decode wall (s) |")
    print("| --- | --- | --- | --- | --- | --- |")
    signatures = {}
    for split in SPLITS:
        path = run / f"{split}.scores.json"
        if not path.is_file():
            continue
        scores = json.loads(path.read_text())
        seconds = (run / f"{split}.decode_wall_seconds.txt").read_text().strip()
        print(
            f"| {split} | {scores['bleu']['score']:.2f} | {scores['chrf']['score']:.2f} | "
            f"{scores['ter']['score']:.2f} | {scores['bleu_tokenized']['score']:.2f} | "
            f"{seconds} |"
        )
        signatures = {k: v["signature"] for k, v in scores.items()}
    print()
    for name, signature in signatures.items():
        print(f"- {name}: `{signature}`")
    return 0


def _training_summary(member: Path) -> str:
    """One seed's training, as its train.log tells it: steps, clock, throughput, size."""
    log = (member / "train.log").read_text() if (member / "train.log").is_file() else ""
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
    if len(sys.argv) < 2:
        sys.exit("usage: results.py RUN_DIR [SEED_RUN_DIR ...]")
    sys.exit(main(*sys.argv[1:]))
