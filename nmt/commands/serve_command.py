"""`nmt serve`: serve a trained model over HTTP."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(
    commands: argparse._SubParsersAction, global_flags: list[argparse.ArgumentParser]
) -> None:
    """Adds `nmt serve` to `commands`, accepting the global flags after it too."""
    p = commands.add_parser(
        "serve",
        parents=global_flags,
        help="serve a trained model over HTTP (POST /translate, GET /health)",
        description='Answer POST /translate with JSON {"text": [...]} (and optional search '
        'settings) with {"translations": [...], "scores": [...]}; requests arriving '
        "together are decoded together. SIGTERM answers the requests in flight, then exits.",
    )
    p.add_argument("--run-dir", required=True, type=Path, help="run directory of a trained model")
    p.add_argument(
        "--checkpoint",
        action="append",
        help="checkpoint prefix instead of the best one; repeat for an ensemble",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument(
        "--port", type=int, default=8080, help="TCP port (default 8080; 0 picks a free one)"
    )
    _add_serve_flags(p)
    p.set_defaults(run=_serve)


def _serve(args: argparse.Namespace) -> int:
    from nmt.decoding.translator import Translator
    from nmt.serving.protocol import RequestLimits
    from nmt.serving.server import ServeOptions, listen, run_name, serve

    options = ServeOptions(
        limits=RequestLimits(
            max_lines=args.max_lines,
            max_line_chars=args.max_line_chars,
            max_body_bytes=args.max_body_bytes,
            max_beam_size=args.max_beam_size,
        ),
        batch_window_ms=args.batch_window_ms,
        max_batch_sentences=args.max_batch_sentences,
        max_queued_sentences=args.max_queued_sentences,
        shutdown_timeout=args.shutdown_timeout,
        access_log=args.access_log,
    )
    # Claim the address first: a port in use fails in a second, not after the model has loaded.
    sock = listen(args.host, args.port)
    translator = Translator.load(args.run_dir, args.checkpoint)
    serve(translator, run_name(args.run_dir), sock, options)
    return 0


def _add_serve_flags(parser: argparse.ArgumentParser) -> None:
    batching = parser.add_argument_group("batching")
    batching.add_argument(
        "--batch-window-ms",
        type=float,
        default=5.0,
        help="how long the oldest waiting request waits for others to share its batch (default 5)",
    )
    batching.add_argument(
        "--max-batch-sentences",
        type=int,
        default=32,
        help="sentences decoded together at most; a larger request is its own batch (default 32)",
    )
    batching.add_argument(
        "--max-queued-sentences",
        type=int,
        default=2048,
        help="sentences allowed to wait; beyond it requests get 503 and Retry-After (default 2048)",
    )
    limits = parser.add_argument_group("request limits (larger requests get 413)")
    limits.add_argument("--max-lines", type=int, default=64, help="lines per request (default 64)")
    limits.add_argument(
        "--max-line-chars", type=int, default=2000, help="characters per line (default 2000)"
    )
    limits.add_argument(
        "--max-body-bytes", type=int, default=1 << 20, help="request body bytes (default 1 MiB)"
    )
    limits.add_argument(
        "--max-beam-size",
        type=int,
        default=16,
        help="largest beam_size a request may ask for (default 16)",
    )
    parser.add_argument(
        "--shutdown-timeout",
        type=float,
        default=60.0,
        help="on SIGTERM, seconds to let requests in flight finish before cancelling them",
    )
    parser.add_argument(
        "--access-log", action="store_true", help="log every request to stderr (uvicorn's log)"
    )
