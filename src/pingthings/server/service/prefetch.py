"""Produce a streamed reply's items ahead of the sender: in one worker thread, or inline when cheap.

A streaming reply alternates two kinds of work: reading and encoding the next chunk (blocking,
numpy/SQLite/Arrow, mostly outside the GIL) and writing the previous one to the socket (the event
loop). :func:`prefetched` overlaps them: one worker thread walks the whole iterator and hands each
item to the loop through a bounded queue, so the loop never waits for a thread hop per chunk and
the worker is at most ``depth`` items ahead (bounded memory, backpressure from a slow client).
With a :class:`~.read_gate.ReadGate` the worker computes each item inside one of the server's read
slots, so many concurrent reads share a few cores instead of fighting over the GIL.

The thread pays off only while an item costs real work (SQLite reads, decoding). When every block a
read needs is already decoded in the cache, an item is one memory copy, shorter than the hop to the
event loop; worse, the worker and the loop then take turns on the GIL around every socket write (a
raw read of 10^6 cached points measured 16-24 ms that way, 11-14 ms inline). :func:`produced`
picks: :func:`inline` for such reads, :func:`prefetched` for the rest.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Callable, Iterator
from typing import Any, Protocol, TypeVar

import anyio.to_thread

from pingthings.server.service.read_gate import ReadGate

T = TypeVar("T")
C = TypeVar("C")
C_co = TypeVar("C_co", covariant=True)
R = TypeVar("R")


class Chunks(Protocol[C_co]):
    """A read's chunks (the engine's ``RawChunks``): an iterator that says whether it is cheap."""

    cached: bool

    def __iter__(self) -> Iterator[C_co]: ...

    def close(self) -> None: ...

#: Items the worker may hold ready before it waits for the sender.
DEFAULT_DEPTH = 2

_DONE: Any = object()


class _Failed:
    """Carries an exception raised by the producer to the consumer."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def _gated(items: Iterator[T], gate: ReadGate) -> Iterator[T]:
    """The items of ``items``, each computed while holding a slot of ``gate``."""
    while True:
        with gate.slot():
            try:
                item = next(items)
            except StopIteration:
                return
        yield item


async def prefetched(
    open_items: Callable[[], Iterator[T]], depth: int = DEFAULT_DEPTH, gate: ReadGate | None = None
) -> AsyncGenerator[T, None]:
    """Yield the items of ``open_items()``, computed in one worker thread up to ``depth`` ahead.

    Parameters
    ----------
    open_items
        Called in the worker thread; returns the (blocking) iterator to walk. If the iterator has a
        ``close`` method it is called in the worker thread when the walk ends for any reason, so an
        engine read snapshot is released even when the consumer stops early.
    depth
        How many finished items may wait for the consumer (at least 1).
    gate
        If given, ``open_items()`` and each step of the iterator run while holding one of its slots
        (released while the worker waits for the consumer).

    Raises
    ------
    Exception
        Whatever ``open_items`` or the iterator raised, at the position where it happened.
    """
    if depth < 1:
        raise ValueError(f"depth must be at least 1, got {depth}")
    loop = asyncio.get_running_loop()
    ready: asyncio.Queue[Any] = asyncio.Queue()
    room = threading.Semaphore(depth)
    stop = threading.Event()

    def hand_over(item: Any) -> None:
        loop.call_soon_threadsafe(ready.put_nowait, item)

    def work() -> None:
        items: Iterator[T] | None = None
        try:
            if gate is None:
                items = open_items()
                steps: Iterator[T] = items
            else:
                with gate.slot():
                    items = open_items()
                steps = _gated(items, gate)
            for item in steps:
                room.acquire()
                if stop.is_set():
                    return
                hand_over(item)
            hand_over(_DONE)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            if not stop.is_set():
                hand_over(_Failed(exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    # anyio's worker threads (the pool the other handlers use), not the loop's small default executor.
    worker = loop.create_task(anyio.to_thread.run_sync(work))
    try:
        while True:
            item = await ready.get()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.exc
            room.release()
            yield item
    finally:
        stop.set()
        room.release()  # wake a worker waiting for room; it sees ``stop`` and closes the iterator
        await asyncio.shield(worker)


async def inline(open_items: Callable[[], Iterator[T]]) -> AsyncGenerator[T, None]:
    """Yield the items of ``open_items()``, each computed in the event loop when the sender asks.

    For producers whose every step is short (well under a millisecond): the loop is held for one
    step at a time, and sending the item in between lets other calls run. The iterator's ``close``
    is called when the walk ends for any reason.
    """
    items = open_items()
    try:
        for item in items:
            yield item
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            close()


def produced(
    open_items: Callable[[], Iterator[T]], cheap: bool, gate: ReadGate | None = None
) -> AsyncGenerator[T, None]:
    """:func:`inline` when each item is ``cheap`` to compute, else :func:`prefetched` (with ``gate``)."""
    return inline(open_items) if cheap else prefetched(open_items, gate=gate)


async def chunk_replies(
    chunks: Chunks[C], encode: Callable[[C], R], empty: Callable[[], R], gate: ReadGate | None
) -> AsyncGenerator[R, None]:
    """Every chunk of a read encoded as one reply, produced as :func:`produced` decides; ``empty()``
    when the read had no chunk (a streamed read always sends at least one message).

    ``chunks`` is closed however the sending ends.
    """

    def encoded() -> Iterator[R]:
        try:
            for chunk in chunks:
                yield encode(chunk)
        finally:
            chunks.close()

    sent = False
    replies = produced(encoded, cheap=chunks.cached, gate=gate)
    try:
        async for reply in replies:
            yield reply
            sent = True
    finally:
        await replies.aclose()
    if not sent:
        yield empty()
