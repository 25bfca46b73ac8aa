"""`nmt serve`: a Starlette app answering `POST /translate` and `GET /health`, run by uvicorn.

The app parses and validates requests on the event loop and hands them to a `Batcher`, which
decodes requests that arrive together as one batch in a single model thread (TensorFlow calls
block; the event loop must not). Every error is JSON `{"error": "..."}`: 4xx for requests the
client must fix, 503 when the queue is full, 500 when the model fails, and the server lives on.

On SIGTERM uvicorn stops listening, closes idle connections and lets the requests in flight
finish; then the batcher stops and the process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from nmt.errors import NmtError
from nmt.serving.batcher import Batcher, BatcherClosed, QueueFull
from nmt.serving.protocol import BadRequest, RequestLimits, parse_request, response_body

logger = logging.getLogger("uvicorn.error")


@dataclasses.dataclass(frozen=True)
class ServeOptions:
    """Batching and limits of `nmt serve` (each is a flag)."""

    limits: RequestLimits = RequestLimits()
    batch_window_ms: float = 5.0
    max_batch_sentences: int = 32
    max_queued_sentences: int = 2048
    shutdown_timeout: float = 60.0
    access_log: bool = False

    def __post_init__(self) -> None:
        checks = (
            ("batch_window_ms", self.batch_window_ms >= 0, ">= 0"),
            ("max_batch_sentences", self.max_batch_sentences >= 1, "a positive integer"),
            ("max_queued_sentences", self.max_queued_sentences >= 1, "a positive integer"),
            ("shutdown_timeout", self.shutdown_timeout >= 0, ">= 0"),
        )
        for name, ok, expectation in checks:
            if not ok:
                raise NmtError(f"{name} must be {expectation}, got {getattr(self, name)}")


@dataclasses.dataclass
class TrafficCounts:
    """HTTP requests the app started handling, and those answered with a complete response."""

    received: int = 0
    answered: int = 0
    finished: int = 0  # answered, or ended without an answer (the client went away)

    @property
    def in_flight(self) -> int:
        return self.received - self.finished


class CountTraffic:
    """The outermost ASGI layer: keeps `TrafficCounts`, so a drain can be shown to lose nothing.

    It wraps Starlette's own error middleware, so a 500 from an unexpected error counts too.
    """

    def __init__(self, app: Any, counts: TrafficCounts):
        self.app = app
        self.counts = counts

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.counts.received += 1

        async def counting_send(message: dict) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                self.counts.answered += 1

        try:
            await self.app(scope, receive, counting_send)
        finally:
            self.counts.finished += 1


def _error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it exceeds `limit` bytes (never read whole)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BadRequest(f"the body has {declared} bytes; the limit is {limit}", 413)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BadRequest(f"the body has more than {limit} bytes", 413)
    return bytes(body)


def create_app(translator: Any, options: ServeOptions, name: str = "model") -> CountTraffic:
    """The ASGI app serving one translator (its `.counts` count the HTTP traffic).

    Args:
        translator: an object with `translate_nbest(lines, **settings)` and `decoding` (a
            `DecodingConfig`), such as `nmt.decoding.translator.Translator`.
        options: batching and request limits.
        name: what /health calls the model (the run directory's name).
    """
    defaults = dataclasses.replace(translator.decoding, batch_size=options.max_batch_sentences)
    batcher = Batcher(
        lambda lines, settings: translator.translate_nbest(lines, **dataclasses.asdict(settings)),
        window=options.batch_window_ms / 1000,
        max_sentences=options.max_batch_sentences,
        max_waiting=options.max_queued_sentences,
    )

    async def translate(request: Request) -> JSONResponse:
        try:
            body = await _read_body(request, options.limits.max_body_bytes)
            parsed = parse_request(body, defaults, options.limits)
        except BadRequest as error:
            return _error(error.status, str(error))
        except ClientDisconnect:
            return _error(400, "the client disconnected before sending the whole body")
        try:
            nbest = await batcher.submit(parsed.lines, parsed.settings)
        except (QueueFull, BatcherClosed) as error:
            return _error(503, str(error), headers={"Retry-After": "1"})
        except Exception as error:
            logger.exception("translating %d lines failed", len(parsed.lines))
            return _error(500, f"translation failed: {type(error).__name__}: {error}")
        return JSONResponse(response_body(nbest, parsed.settings.n_best))

    async def health(request: Request) -> JSONResponse:
        stats = batcher.stats
        return JSONResponse({"status": "ok", "model": name, **stats._asdict()})

    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        return _error(error.status_code, str(error.detail), headers=error.headers)

    async def server_error(request: Request, error: Exception) -> JSONResponse:
        return _error(500, f"internal error: {type(error).__name__}")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        runner = asyncio.create_task(batcher.run())
        yield
        await batcher.close(runner)

    app = Starlette(
        routes=[
            Route("/translate", translate, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
        ],
        exception_handlers={HTTPException: http_error, Exception: server_error},
        lifespan=lifespan,
    )
    return CountTraffic(app, TrafficCounts())


class _Server(uvicorn.Server):
    """uvicorn's server, saying when it listens and exiting 0 after a SIGTERM drain."""

    def __init__(self, config: uvicorn.Config, on_ready: Callable[[], None]):
        super().__init__(config)
        self._on_ready = on_ready
        self.in_flight_at_signal = 0

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self._on_ready()

    def handle_exit(self, sig: int, frame: Any) -> None:
        # uvicorn re-raises a caught signal once it has shut down, so SIGTERM would end the
        # process with status -15 after a clean drain; a finished drain is a success.
        if not self.should_exit:
            self.in_flight_at_signal = self.config.app.counts.in_flight
        if sig == signal.SIGTERM:
            self.should_exit = True
            return
        super().handle_exit(sig, frame)


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0: a free one).

    Raises:
        NmtError: the address is taken or not this machine's.
    """
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        return socket.create_server((host, port), family=family, backlog=2048)
    except OSError as error:
        raise NmtError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None


class ServeSummary(NamedTuple):
    received: int  # HTTP requests the app started handling
    answered: int  # of them, answered with a complete response


def make_server(app: CountTraffic, options: ServeOptions, on_ready: Callable[[], None]) -> _Server:
    """A uvicorn server for `app`; run it with `.run(sockets=[listen(host, port)])`."""
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=options.access_log,
        timeout_graceful_shutdown=int(options.shutdown_timeout),
        lifespan="on",
    )
    return _Server(config, on_ready)


def serve(translator: Any, name: str, sock: socket.socket, options: ServeOptions) -> ServeSummary:
    """Serves `translator` on `sock` (from `listen`) until SIGTERM or Ctrl+C.

    Prints `serving NAME on http://HOST:PORT` once it accepts requests (after one warm-up
    translation, so the first client does not pay for tracing the search).

    Returns:
        How many requests were received and answered.
    """
    translator.translate_nbest(["warm up"], batch_size=options.max_batch_sentences)
    app = create_app(translator, options, name)
    host, bound = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    server = make_server(
        app, options, lambda: print(f"serving {name} on http://{shown}:{bound}", flush=True)
    )
    server.run(sockets=[sock])
    counts = app.counts
    print(
        f"nmt serve: stopped; answered {counts.answered} of {counts.received} requests "
        f"({server.in_flight_at_signal} in flight at the signal)",
        file=sys.stderr,
    )
    return ServeSummary(counts.received, counts.answered)


def run_name(run_dir: Path) -> str:
    return Path(run_dir).resolve().name
