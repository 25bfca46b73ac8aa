#!/usr/bin/env python3
"""Summarise a finished Multi30k run directory as a Markdown results table (printed)."""

from __future__ import annotations

import json
import re
import statistics
import sys
from pathlib import Path

import yaml


def main(run_dir: str) -> int:
    run = Path(run_dir)
    config = yaml.safe_load((run / "config.yaml").read_text())
    log = (run / "train.log").read_text() if (run / "train.log").is_file() else ""
    speeds = [float(s.replace(",", "")) for s in re.findall(r"\| ([\d,]+) tgt tok/s", log)]
    params = re.findall(r"model: ([\d,]+) parameters", log)
    stops = re.findall(r"stopped at step (\d+) \((\w+)\)", log)
    clocks = re.findall(r"tgt tok/s \| (\d+:\d\d:\d\d)", log)
    wall = (run / "train_wall_seconds.txt").read_text().strip()
    decoded = run / "decoded_checkpoint.txt"
    decoding = config["decoding"]
    print(f"# Results for {run}\n")
    if clocks:
        print(
            f"- training clock: {clocks[-1]} at the last logged step (`nmt train`'s own clock:"
            " validation and checkpoints included, carried over resumes)"
        )
    print(
        f"- training wall time: {int(wall) / 60:.1f} min (this run directory's last `nmt train`"
        " call, start-up, validation and checkpoints included)"
    )
    if decoded.is_file():
        print(f"- decoded with: `{decoded.read_text().strip()}`")
    if stops:
        print(f"- stopped at step {stops[-1][0]} ({stops[-1][1]})")
    if speeds:
        print(
            f"- training throughput: median {statistics.median(speeds[1:] or speeds):,.0f} "
            "target tokens/s over the logged windows (first window excluded)"
        )
    if params:
        print(f"- parameters: {params[-1]}")
    print(
        f"- search: beam {decoding['beam_size']}, length penalty {decoding['length_penalty']}, "
        f"coverage penalty {decoding['coverage_penalty']}\n"
    )
    print("| split | BLEU | chrF | TER | BLEU lc-tok | decode wall (s) |")
    print("| --- | --- | --- | --- | --- | --- |")
    signatures = {}
    for split in ("val", "test_2016_flickr"):
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


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
