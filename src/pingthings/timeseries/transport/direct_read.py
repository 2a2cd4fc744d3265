"""Read a plain TCP connection on trio straight from its socket, and bound reads with trio's own scope.

anyio's trio ``SocketStream.receive`` calls trio's ``socket.recv``, which checks for cancellation
before it reads and, once it has read, passes through one more scheduling point (a cancel-shielded
checkpoint): a full turn of trio's run loop on every receive. The receive of a small call's reply
has to wait anyway (the reply is not there yet when the request has just gone out), and that wait is
a scheduling point of its own, so the extra turn buys nothing there.

:func:`direct_reader` gives such a connection a receive that tries the socket first and, when
nothing is there, waits until it is readable (``trio.lowlevel.wait_readable``: a scheduling point
that cancellation interrupts) and tries again. When bytes were there at once, it still passes
through one checkpoint, so a stream of ready data never keeps other tasks from running. What the
connection sees is what anyio's receive gives: bytes, ``anyio.EndOfStream`` at the end of the
stream, ``anyio.ClosedResourceError`` when the stream was closed under the wait, ``OSError`` from
the socket (all of them :data:`.errors.LOW_LEVEL_ERRORS`).

:func:`scope_factory` is the cancel scope a bounded read enters: trio's ``CancelScope`` itself on
trio (anyio's wrapper adds a few microseconds to every small call), anyio's elsewhere.

TLS streams and other backends get no direct reader (anyio's receive is used).
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.abc
import anyio.streams.tls

from .backend import Backend

__all__ = ["direct_reader", "scope_factory"]

Receive = Callable[[int], Awaitable[bytes]]
"""Receive at most the given number of bytes (at least one; the stream's end raises EndOfStream)."""


def _on_trio(stream: anyio.abc.ByteStream) -> bool:
    return type(stream).__module__.endswith("._trio")  # anyio's classes live in anyio._backends._<name>


def direct_reader(stream: anyio.abc.ByteStream) -> Receive | None:
    """A receive that reads the socket of ``stream`` directly (plain TCP on trio), or None."""
    if isinstance(stream, anyio.streams.tls.TLSStream) or not _on_trio(stream):
        return None
    raw = stream.extra(anyio.abc.SocketAttribute.raw_socket, None)
    if not isinstance(raw, socket.socket):
        return None
    return _socket_reader(raw)


def _socket_reader(sock: socket.socket) -> Receive:
    import trio  # the stream is trio's: trio is running

    wait_readable = trio.lowlevel.wait_readable
    checkpoint = trio.lowlevel.checkpoint

    async def receive(size: int) -> bytes:
        waited = False
        while True:
            try:
                data = sock.recv(size)
            except BlockingIOError:
                try:
                    await wait_readable(sock)
                except trio.ClosedResourceError as exc:
                    raise anyio.ClosedResourceError from exc
                waited = True
                continue
            if not waited:
                await checkpoint()  # ready at once: still let other tasks run
            if not data:
                raise anyio.EndOfStream
            return data

    return receive


def scope_factory(stream: anyio.abc.ByteStream, backend: Backend) -> Callable[..., Any]:
    """What makes the cancel scope of a bounded read (``factory(deadline=...)``, with
    ``cancelled_caught`` after it): trio's own class on trio, else the backend's."""
    if _on_trio(stream):
        import trio

        return trio.CancelScope
    return backend.create_cancel_scope
