"""Read several streams' chunks at once, each one chunk ahead of the reply that joins them.

ArrowMultiValues joins many streams. Pulled one chunk at a time, stream after stream, a cold read
decodes on one core while the other waits, and nothing is decoded while the joined rows are built
and sent. :class:`ReadAhead` wraps one stream's engine chunk iterator: :meth:`ReadAhead.start`
begins computing the next chunk in a worker thread (inside a slot of the server's read gate), and
once a chunk is taken the following one is started at once. A handler that starts every stream it
needs before taking any of them has all those streams decoding in parallel, as many at a time as
the gate has slots, while it joins and sends what it already has.

Each chunk is a short, independent worker-thread call, never a thread parked on a consumer, so many
concurrent multi-stream reads cannot exhaust the worker threads and wait on each other.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any, Generic, TypeVar

import anyio.to_thread

from pingthings.server.service.read_gate import ReadGate

T = TypeVar("T")

_END: Any = object()


class ReadAhead(AsyncIterator[T], Generic[T]):
    """An async iterator over a blocking chunk iterator that computes the next chunk ahead of time.

    Parameters
    ----------
    chunks
        The engine's chunk iterator (its ``close``, if any, is called by :meth:`aclose`).
    gate
        The server's read gate; each chunk is computed while holding one of its slots.
    """

    def __init__(self, chunks: Iterator[T], gate: ReadGate | None = None) -> None:
        self._chunks = chunks
        self._gate = gate
        self._pending: asyncio.Future[Any] | None = None
        self._finished = False

    def _step(self) -> Any:
        if self._gate is None:
            return next(self._chunks, _END)
        with self._gate.slot():
            return next(self._chunks, _END)

    def start(self) -> None:
        """Begin computing the next chunk in a worker thread, unless that is under way or done."""
        if self._pending is None and not self._finished:
            self._pending = asyncio.ensure_future(anyio.to_thread.run_sync(self._step))

    def __aiter__(self) -> ReadAhead[T]:
        return self

    async def __anext__(self) -> T:
        self.start()
        pending = self._pending
        if pending is None:
            raise StopAsyncIteration
        # Shielded: if the caller is cancelled the chunk still finishes, and aclose waits for it.
        item = await asyncio.shield(pending)
        self._pending = None
        if item is _END:
            self._finished = True
            raise StopAsyncIteration
        self.start()  # the following chunk is computed while the caller uses this one
        return item  # type: ignore[no-any-return]

    async def aclose(self) -> None:
        """Wait for a chunk still being computed, then close the chunk iterator (in a worker thread)."""
        self._finished = True
        pending, self._pending = self._pending, None
        if pending is not None:
            with contextlib.suppress(BaseException):
                await asyncio.shield(pending)
        close = getattr(self._chunks, "close", None)
        if close is not None:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(close)


def start_reads(readers: Iterable[object]) -> None:
    """Start the next chunk of every :class:`ReadAhead` among ``readers`` (others are left alone)."""
    for reader in readers:
        if isinstance(reader, ReadAhead):
            reader.start()
