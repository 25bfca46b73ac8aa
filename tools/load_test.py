#!/usr/bin/env python3
"""Load test of a running `nmt serve`: N concurrent clients, throughput, latency, correctness.

    nmt translate --run-dir RUN --input test.en.gz --output expected.de
    nmt serve --run-dir RUN --port 8080 &
    python tools/load_test.py --url http://127.0.0.1:8080 --input test.en.gz \
        --expected expected.de --clients 8 --lines-per-request 4 --duration 60

Each client keeps its own connection and sends one request at a time: M consecutive lines of
the input, starting where its previous request stopped (clients start at different places).
Every response is checked: one translation per line, the same translation of a line every time
it comes back (nothing lost, swapped or reordered between requests), and with --expected the
translation `nmt translate` gave for that line. Prints requests/s, sentences/s and p50/p95/p99
latency; exits 1 when any request failed or any answer was wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gzip
import json
import math
import sys
import time
from typing import NamedTuple

import httpx


class Outcome(NamedTuple):
    """What one request got."""

    latency: float  # seconds
    lines: int
    failure: str  # "" on success, else "connection", "HTTP <status>" or "wrong answer"
    detail: str = ""


def read_lines(path: str) -> list[str]:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", newline="") as file:
        lines = file.read().split("\n")  # "\n" only, as `nmt translate` reads
    if lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


class Checker:
    """Remembers each line's translation; a different one later means a mix-up."""

    def __init__(self, expected: dict[str, str] | None):
        self.expected = expected
        self.seen: dict[str, str] = {}

    def check(self, lines: list[str], body: object) -> str:
        if not isinstance(body, dict) or not isinstance(body.get("translations"), list):
            return f"response without a translations list: {str(body)[:80]}"
        translations = body["translations"]
        if len(translations) != len(lines) or len(body.get("scores", [])) != len(lines):
            return f"{len(lines)} lines sent, {len(translations)} translations back"
        for line, got in zip(lines, translations):
            want = self.expected.get(line) if self.expected else None
            if want is not None and got != want:
                return f"{line!r} -> {got!r}, `nmt translate` gave {want!r}"
            earlier = self.seen.setdefault(line, got)
            if earlier != got:
                return f"{line!r} -> {got!r}, earlier {earlier!r}"
        return ""


async def one_request(
    client: httpx.AsyncClient, url: str, payload: dict, checker: Checker
) -> Outcome:
    start = time.perf_counter()
    try:
        response = await client.post(url, json=payload)
        body = response.json()
    except (httpx.HTTPError, ValueError) as error:
        return Outcome(
            time.perf_counter() - start, 0, "connection", f"{type(error).__name__}: {error}"
        )
    latency = time.perf_counter() - start
    if response.status_code != 200:
        return Outcome(latency, 0, f"HTTP {response.status_code}", str(body)[:200])
    wrong = checker.check(payload["text"], body)
    return Outcome(latency, len(payload["text"]), "wrong answer" if wrong else "", wrong)


async def client_loop(
    index: int, args: argparse.Namespace, lines: list[str], checker: Checker, deadline: float
) -> list[Outcome]:
    """One client: sends its requests one after another until the count or the time is up."""
    url = args.url.rstrip("/") + "/translate"
    m = args.lines_per_request
    position = index * len(lines) // args.clients
    outcomes = []
    async with httpx.AsyncClient(timeout=args.timeout) as client:
        while len(outcomes) < args.requests if args.requests else time.time() < deadline:
            batch = [lines[(position + j) % len(lines)] for j in range(m)]
            position = (position + m) % len(lines)
            outcome = await one_request(client, url, {"text": batch, **args.settings}, checker)
            outcomes.append(outcome)
            if outcome.failure == "connection":
                await asyncio.sleep(0.1)  # a server that went away is not hammered in a loop
    return outcomes


def summarize(outcomes: list[Outcome], seconds: float, clients: int) -> dict:
    good = [o for o in outcomes if not o.failure]
    latencies = [o.latency * 1000 for o in good] or [math.nan]
    failures = collections.Counter(o.failure for o in outcomes if o.failure)
    return {
        "clients": clients,
        "requests": len(outcomes),
        "failed": len(outcomes) - len(good),
        "failures": dict(failures),
        "first_failure": next((f"{o.failure}: {o.detail}" for o in outcomes if o.failure), ""),
        "seconds": round(seconds, 3),
        "requests_per_s": round(len(good) / seconds, 2),
        "sentences_per_s": round(sum(o.lines for o in good) / seconds, 2),
        "latency_ms": {f"p{p}": round(percentile(latencies, p), 1) for p in (50, 95, 99)},
    }


async def run(args: argparse.Namespace) -> dict:
    lines = read_lines(args.input)
    if not lines:
        raise SystemExit(f"load_test: {args.input} has no lines")
    expected = None
    if args.expected:
        translations = read_lines(args.expected)
        if len(translations) != len(lines):
            raise SystemExit(
                f"load_test: --expected has {len(translations)} lines, --input {len(lines)}"
            )
        expected = dict(zip(lines, translations))
    checker = Checker(expected)
    start = time.time()
    deadline = start + (args.duration or 0)
    per_client = await asyncio.gather(
        *(client_loop(i, args, lines, checker, deadline) for i in range(args.clients))
    )
    return summarize([o for c in per_client for o in c], time.time() - start, args.clients)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="server address, e.g. http://127.0.0.1:8080")
    parser.add_argument("--input", required=True, help="source lines to send (plain or .gz)")
    parser.add_argument(
        "--expected",
        help="`nmt translate`'s output for --input: every answer must equal it line for line",
    )
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument(
        "--lines-per-request", type=int, default=4, help="lines in each request (default 4)"
    )
    stop = parser.add_mutually_exclusive_group(required=True)
    stop.add_argument("--requests", type=int, help="requests per client")
    stop.add_argument("--duration", type=float, help="seconds to keep sending")
    parser.add_argument(
        "--settings",
        type=json.loads,
        default={},
        help="search settings sent with every request, as JSON, e.g. '{\"beam_size\": 5}'",
    )
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="seconds one request may take (default 120)"
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args(argv)
    for name in ("clients", "lines_per_request", "requests", "duration"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive, got {value}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    summary = asyncio.run(run(args))
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        latency = summary["latency_ms"]
        print(
            f"{summary['clients']} clients, {summary['requests']} requests in "
            f"{summary['seconds']:.1f} s: {summary['requests_per_s']:.1f} requests/s, "
            f"{summary['sentences_per_s']:.1f} sentences/s; latency p50 {latency['p50']:.0f} ms, "
            f"p95 {latency['p95']:.0f} ms, p99 {latency['p99']:.0f} ms"
        )
        if summary["failed"]:
            print(f"FAILED {summary['failed']}: {summary['failures']}")
            print(f"first: {summary['first_failure']}")
    return 1 if summary["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
