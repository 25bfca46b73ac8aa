#!/usr/bin/env python3
"""Peak RSS of `nmt translate` on generated inputs of growing length (streaming check).

    python tools/translate_memory.py --run-dir runs/demo --lines 10000 1000000

Writes N lines of toy number words, runs `nmt translate --input FILE --output FILE` in a child
process per size, and reports the child's peak RSS (from wait4), wall time and line counts.
If translate streams, RSS stays flat as N grows.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nmt.toy import english  # noqa: E402


def measure(run_dir: str, lines: int, work: Path, extra: list[str]) -> dict:
    source, output = work / f"in.{lines}.txt", work / f"out.{lines}.txt"
    with open(source, "w", encoding="utf-8") as f:
        for i in range(lines):
            f.write(english((i * 7919) % 1_000_000) + "\n")
    command = [
        sys.executable,
        "-m",
        "nmt",
        "translate",
        "--run-dir",
        run_dir,
        "--input",
        str(source),
        "--output",
        str(output),
        *extra,
    ]
    started = time.perf_counter()
    process = subprocess.Popen(command)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    with open(output, "rb") as f:
        produced = sum(1 for _ in f)
    return {
        "lines": lines,
        "output_lines": produced,
        "exit_status": status,
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
        "wall_seconds": round(seconds, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--lines", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument(
        "--extra",
        nargs=argparse.REMAINDER,
        default=["--beam-size", "1"],
        help="more `nmt translate` flags (default: --beam-size 1)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        results = [measure(args.run_dir, n, Path(work), args.extra) for n in args.lines]
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
