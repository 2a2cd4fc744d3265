"""Read a plain TCP connection on trio straight from its socket, bounded without a scope per read.

anyio's trio ``SocketStream.receive`` calls trio's ``socket.recv``, which checks for cancellation
before it reads and, once it has read, passes through one more scheduling point (a cancel-shielded
checkpoint): a full turn of trio's run loop on every receive. The receive of a small call's reply
has to wait anyway (the reply is not there yet when the request has just gone out), and that wait is
a scheduling point of its own, so the extra turn buys nothing there.

:class:`TrioSocketReader` tries the socket first and, when nothing is there, waits until it is
readable (``trio.lowlevel.wait_readable``: a scheduling point that cancellation interrupts) and
tries again. Only when bytes were there at once does it pass through one more scheduling point, so
a stream of ready data never keeps other tasks from running; like anyio's, that one is shielded
from cancellation, since the bytes are out of the socket and a cancellation there would lose them.
What the connection sees is what anyio's receive gives: bytes, ``anyio.EndOfStream`` at the end of
the stream, ``anyio.ClosedResourceError`` when the stream was closed under the wait, ``OSError``
from the socket (all of them :data:`.errors.LOW_LEVEL_ERRORS`).

A read must also end at the keepalive interval and at the call's deadline. A trio cancel scope per
read did that, but entering and leaving one costs about 12 % of a small call's client CPU (trio's
scope registers its deadline, builds a status object and closes through a context manager). So
the reader keeps the limit itself (:meth:`TrioSocketReader.receive_until`, with one watcher task per
connection), as the steady reader does with a loop timer on asyncio.

:func:`scope_factory` is the cancel scope the other bounded reads enter (TLS on trio): trio's
``CancelScope`` itself on trio (anyio's wrapper adds a few microseconds), anyio's elsewhere.

TLS streams and other backends get no direct reader (anyio's receive is used).
"""

from __future__ import annotations

import contextlib
import logging
import math
import socket
from collections.abc import Callable
from typing import Any

import anyio
import anyio.abc
import anyio.streams.tls

from .backend import Backend

log = logging.getLogger(__name__)

__all__ = ["TrioSocketReader", "direct_reader", "scope_factory"]

def _on_trio(stream: anyio.abc.ByteStream) -> bool:
    return type(stream).__module__.endswith("._trio")  # anyio's classes live in anyio._backends._<name>


def direct_reader(stream: anyio.abc.ByteStream) -> TrioSocketReader | None:
    """A reader of the socket of ``stream`` itself (plain TCP on trio), or None."""
    if isinstance(stream, anyio.streams.tls.TLSStream) or not _on_trio(stream):
        return None
    raw = stream.extra(anyio.abc.SocketAttribute.raw_socket, None)
    if not isinstance(raw, socket.socket):
        return None
    return TrioSocketReader(raw)


class TrioSocketReader:
    """Receives from (and sends to) a trio TCP socket directly; bounds a wait without a scope per read.

    :meth:`receive_until` returns ``b""`` once its limit passes with nothing received. The limit is
    kept by one watcher task per connection (a trio system task, started by the first bounded
    read), which sleeps until the limit of the read waiting then and, if that read still waits,
    wakes it with ``trio.lowlevel.notify_closing`` on the socket (trio forgets the socket's
    registration then; the next wait registers it again). A read's limit is usually later than the
    watcher's wake-up time (the keepalive interval from now, later with every read), so arming it
    is two assignments; the watcher wakes once per interval, finds the read that waits now (or
    none), and sleeps again.

    ``notify_closing`` wakes every task waiting on the socket, a write waiting for room in it too.
    So writes that must wait go through :meth:`send`, which waits again when the watcher (not a
    close) woke it. :meth:`close` (the connection failed or closes) ends the watcher and wakes a
    read still waiting, so that no read outlives its limit.
    """

    def __init__(self, sock: socket.socket) -> None:
        import trio  # the stream is trio's: trio is running

        self._trio = trio
        self._sock = sock
        self._limit = math.inf  # the limit of the read waiting now (inf: none)
        self._target = math.inf  # when the watcher wakes up next
        self._sleep: trio.CancelScope | None = None  # the watcher's sleep, while it sleeps
        self._watching = False
        self._fired = False  # the limit of the waiting read passed (or the reader closed under it)
        self._wakes = 0  # how many times the socket's waiters were woken on purpose
        self._closed = False

    async def receive(self, size: int) -> bytes:
        """At most ``size`` bytes, at least one (``anyio.EndOfStream`` at the end of the stream)."""
        trio = self._trio
        sock = self._sock
        waited = False
        while True:
            try:
                data = sock.recv(size)
            except BlockingIOError:
                if self._fired:
                    return b""  # the limit passed while a wake-up found nothing to read
                try:
                    await trio.lowlevel.wait_readable(sock)
                except trio.ClosedResourceError as exc:
                    if self._fired:
                        return b""  # woken on purpose: the limit passed
                    raise anyio.ClosedResourceError from exc
                waited = True
                continue
            if not waited:  # ready at once: still let other tasks run, but never lose what was read
                await trio.lowlevel.cancel_shielded_checkpoint()
            if not data:
                raise anyio.EndOfStream
            return data

    async def receive_until(self, size: int, limit: float) -> bytes:
        """:meth:`receive`, or ``b""`` once ``limit`` (trio's clock) passes with nothing received."""
        if self._closed:  # no watcher any more (a read after the connection failed): a scope
            with self._trio.move_on_at(limit):
                return await self.receive(size)
            return b""
        self._limit = limit
        self._fired = False
        if limit < self._target:
            self._target = limit
            if self._sleep is not None:
                self._sleep.deadline = limit
        if not self._watching:
            self._watching = True
            self._trio.lowlevel.spawn_system_task(self._watch, name="pingthings read watcher")
        try:
            return await self.receive(size)
        finally:
            self._limit = math.inf
            self._fired = False

    async def send(self, data: bytes) -> None:
        """Send all of ``data``, waiting for room in the socket as needed (cancellable, as anyio's)."""
        trio = self._trio
        sock = self._sock
        view = memoryview(data)
        while view:
            try:
                view = view[sock.send(view) :]
                continue
            except BlockingIOError:
                pass
            wakes = self._wakes
            try:
                await trio.lowlevel.wait_writable(sock)
            except trio.ClosedResourceError as exc:
                if self._closed or self._wakes == wakes:
                    raise anyio.ClosedResourceError from exc
                # the watcher woke the socket's waiters for a read past its limit: wait again

    async def _watch(self) -> None:
        trio = self._trio
        try:
            await self._watch_limits(trio)
        except Exception:  # a system task must not fail: trio would end the whole run for it
            log.exception("the read watcher stopped; bounded reads take a cancel scope from now on")
            self.close()
        finally:
            self._watching = False
            self._sleep = None

    async def _watch_limits(self, trio: Any) -> None:
        while not self._closed:
            with trio.CancelScope(deadline=self._target) as sleep:
                self._sleep = sleep
                await trio.sleep_forever()
            self._sleep = None
            if self._closed:
                return
            if trio.current_time() >= self._limit:
                self._wake_read()
            self._target = self._limit

    def _wake_read(self) -> None:
        """End the wait of the read waiting now: it returns ``b""`` (a waiting send waits again)."""
        self._fired = True
        self._limit = math.inf
        self._wakes += 1
        with contextlib.suppress(OSError, ValueError):  # a socket closed meanwhile
            self._trio.lowlevel.notify_closing(self._sock)

    def close(self) -> None:
        """Stop the watcher and wake a read still waiting (the connection failed or closes)."""
        if self._closed:
            return
        self._closed = True
        if self._sleep is not None:
            self._sleep.cancel()
        if self._limit != math.inf:
            self._wake_read()


def scope_factory(stream: anyio.abc.ByteStream, backend: Backend) -> Callable[..., Any]:
    """What makes the cancel scope of a bounded read (``factory(deadline=...)``, with
    ``cancelled_caught`` after it): trio's own class on trio, else the backend's."""
    if _on_trio(stream):
        import trio

        return trio.CancelScope
    return backend.create_cancel_scope
