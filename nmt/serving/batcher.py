"""Request batching for `nmt serve`: requests that arrive together are decoded together.

Every request waits in one queue. One coroutine takes the oldest request, waits a short collection
window for company (or until the batch is full), and hands every waiting request with the same
search settings, up to a sentence budget, to the model as one batch. The model runs in a single
worker thread because TensorFlow calls block: the event loop keeps accepting and parsing requests
while a batch decodes, and those requests form the next batch. A request is never split across
batches, and each gets back exactly its own lines' results, in order.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
from collections.abc import Callable, Hashable, Sequence
from typing import Any, NamedTuple


class QueueFull(Exception):
    """More sentences are waiting than the server accepts; the client should retry later."""


class BatcherClosed(Exception):
    """The server is shutting down and takes no new requests."""


class Job(NamedTuple):
    """One request waiting for the model."""

    lines: list[str]
    settings: Hashable  # requests share a batch only when their settings are equal
    future: asyncio.Future
    arrived: float  # event-loop time


class BatcherStats(NamedTuple):
    """Counters for /health: how many requests and sentences went through in how many batches."""

    requests: int
    sentences: int
    batches: int
    waiting_requests: int


class Batcher:
    """Collects concurrent requests into batches and decodes them in one worker thread.

    Args:
        decode: `decode(lines, settings) -> results`, one result per line in order; it runs in
            the worker thread and may block.
        window: seconds a batch waits for more requests after its oldest one arrived.
        max_sentences: sentence budget of one batch (a larger single request is its own batch).
        max_waiting: sentences allowed to wait; beyond it `submit` raises `QueueFull`.
    """

    def __init__(
        self,
        decode: Callable[[list[str], Any], Sequence[Any]],
        window: float,
        max_sentences: int,
        max_waiting: int,
    ):
        if window < 0:
            raise ValueError(f"`window` must be >= 0 seconds, got {window}")
        if max_sentences < 1:
            raise ValueError(f"`max_sentences` must be a positive integer, got {max_sentences}")
        if max_waiting < 1:
            raise ValueError(f"`max_waiting` must be a positive integer, got {max_waiting}")
        self._decode = decode
        self._window = window
        self._max_sentences = max_sentences
        self._max_waiting = max_waiting
        self._waiting: collections.deque[Job] = collections.deque()
        self._arrival = asyncio.Event()
        self._closing = False
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="nmt-model")
        self._counts = collections.Counter()

    @property
    def stats(self) -> BatcherStats:
        return BatcherStats(
            self._counts["requests"],
            self._counts["sentences"],
            self._counts["batches"],
            len(self._waiting),
        )

    async def submit(self, lines: list[str], settings: Hashable) -> list[Any]:
        """Queues one request and waits for its results (one per line, in order).

        Raises:
            QueueFull: too many sentences are already waiting.
            BatcherClosed: `close` was called.
            Exception: whatever `decode` raised for the batch this request was in.
        """
        if self._closing:
            raise BatcherClosed("the server is shutting down")
        waiting = sum(len(job.lines) for job in self._waiting)
        if waiting and waiting + len(lines) > self._max_waiting:
            raise QueueFull(f"{waiting} sentences are waiting already; retry later")
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._waiting.append(Job(lines, settings, future, loop.time()))
        self._arrival.set()
        return await future

    async def run(self) -> None:
        """Decodes batches until `close` is called and nothing is left waiting."""
        while True:
            self._drop_abandoned()
            if not self._waiting:
                if self._closing:
                    return
                self._arrival.clear()
                await self._arrival.wait()
                continue
            await self._collect(self._waiting[0])
            batch = self._take_batch()
            if batch:
                await self._decode_batch(batch)

    async def close(self, runner: asyncio.Task) -> None:
        """Refuses new requests, lets `runner` (the `run` task) answer the waiting ones, stops."""
        self._closing = True
        self._arrival.set()
        await runner
        self._executor.shutdown(wait=True)

    def _drop_abandoned(self) -> None:
        # A request whose handler was cancelled (its client went away) needs no decoding.
        if any(job.future.done() for job in self._waiting):
            self._waiting = collections.deque(j for j in self._waiting if not j.future.done())

    def _companions(self, first: Job) -> int:
        return sum(len(job.lines) for job in self._waiting if job.settings == first.settings)

    async def _collect(self, first: Job) -> None:
        """Waits until `first` is `window` old or enough requests like it wait to fill a batch."""
        loop = asyncio.get_running_loop()
        deadline = first.arrived + self._window
        while self._companions(first) < self._max_sentences:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            self._arrival.clear()
            try:
                await asyncio.wait_for(self._arrival.wait(), remaining)
            except asyncio.TimeoutError:
                return

    def _take_batch(self) -> list[Job]:
        """The oldest request and the next ones with its settings that fit the sentence budget."""
        first = self._waiting[0]
        batch, rest, size, full = [], collections.deque(), 0, False
        for job in self._waiting:
            fits = not batch or size + len(job.lines) <= self._max_sentences
            # Stopping at the first one that does not fit keeps arrival order (no starvation).
            if job.settings == first.settings and fits and not full:
                batch.append(job)
                size += len(job.lines)
            else:
                full = full or job.settings == first.settings
                rest.append(job)
        self._waiting = rest
        return batch

    async def _decode_batch(self, batch: list[Job]) -> None:
        lines = [line for job in batch for line in job.lines]
        loop = asyncio.get_running_loop()
        self._counts.update(requests=len(batch), sentences=len(lines), batches=1)
        try:
            results = await loop.run_in_executor(
                self._executor, self._decode, lines, batch[0].settings
            )
            if len(results) != len(lines):
                raise RuntimeError(f"decoding {len(lines)} lines gave {len(results)} results")
        except Exception as error:  # the model failed: every request of the batch hears it
            for job in batch:
                if not job.future.done():
                    job.future.set_exception(error)
            return
        start = 0
        for job in batch:
            if not job.future.done():
                job.future.set_result(list(results[start : start + len(job.lines)]))
            start += len(job.lines)
