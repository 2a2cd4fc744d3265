"""Run a blocking producer (engine read + reply encoding) in one worker thread, ahead of the sender.

A streaming reply alternates two kinds of work: reading and encoding the next chunk (blocking,
numpy/SQLite/Arrow, mostly outside the GIL) and writing the previous one to the socket (the event
loop). :func:`prefetched` overlaps them: one worker thread walks the whole iterator and hands each
item to the loop through a bounded queue, so the loop never waits for a thread hop per chunk and
the worker is at most ``depth`` items ahead (bounded memory, backpressure from a slow client).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Callable, Iterator
from typing import Any, TypeVar

import anyio.to_thread

T = TypeVar("T")

#: Items the worker may hold ready before it waits for the sender.
DEFAULT_DEPTH = 2

_DONE: Any = object()


class _Failed:
    """Carries an exception raised by the producer to the consumer."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


async def prefetched(
    open_items: Callable[[], Iterator[T]], depth: int = DEFAULT_DEPTH
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
            items = open_items()
            for item in items:
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
