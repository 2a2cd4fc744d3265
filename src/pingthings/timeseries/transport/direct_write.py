"""Write to a plain TCP connection without an ``await`` when the socket takes the bytes at once.

anyio's ``SocketStream.send`` always ends with a scheduling point (a cancel-shielded checkpoint): one
more turn of the event loop and one more cancel scope per call, about a fifth of the client CPU of a
small call. Yet a request of a few hundred bytes almost always fits the socket's send buffer at once.
:func:`direct_writer` gives the connection a synchronous writer that hands the bytes over directly and
says how many it took; the connection awaits anyio's ``send`` only for the rest (a full socket buffer).

* trio: the socket is non-blocking and trio keeps no buffer of its own, so ``socket.send`` is exactly
  what anyio does first; the connection's send lock ensures a single writer.
* asyncio: the transport owns the socket and may hold unsent bytes, so the writer goes through the
  transport (``transport.write``, which sends at once when its buffer is empty and keeps order
  otherwise), and only while the transport accepts writes (not paused for flow control). anyio does
  not publish its transport: this uses the private ``SocketStream._transport`` and ``_protocol``. When
  a future anyio lacks them, :func:`direct_writer` returns None and reports the fallback once
  (:func:`pingthings.fastpaths.report_fallback`): writes then await anyio's ``send``, slower, never wrong.

TLS streams get no direct writer (the TLS layer must see every byte).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import anyio.abc
import anyio.streams.tls

from pingthings.fastpaths import report_fallback

DirectWriter = Callable[[bytes], int]
"""Write what the socket takes now; return the number of bytes taken (0 when nothing can go now)."""


def direct_writer(stream: anyio.abc.ByteStream) -> DirectWriter | None:
    """A synchronous writer for ``stream`` (a plain TCP stream of the running backend), or None."""
    if isinstance(stream, anyio.streams.tls.TLSStream):
        return None
    backend = type(stream).__module__  # anyio's stream classes live in anyio._backends._<name>
    if backend.endswith("._trio"):
        raw = stream.extra(anyio.abc.SocketAttribute.raw_socket, None)
        if isinstance(raw, socket.socket):
            return _socket_writer(raw)
    elif backend.endswith("._asyncio"):
        transport = getattr(stream, "_transport", None)
        ready = getattr(getattr(stream, "_protocol", None), "write_event", None)
        if isinstance(transport, asyncio.WriteTransport) and isinstance(ready, asyncio.Event):
            return _transport_writer(transport, ready)
    report_fallback("direct-write", f"unknown stream {type(stream).__qualname__} from {backend}")
    return None


def _socket_writer(sock: socket.socket) -> DirectWriter:
    def write(data: bytes) -> int:
        try:
            return sock.send(data)
        except BlockingIOError:
            return 0

    return write


def _transport_writer(transport: asyncio.WriteTransport, ready: asyncio.Event) -> DirectWriter:
    def write(data: bytes) -> int:
        if transport.is_closing() or not ready.is_set():
            return 0  # closed (anyio's send says how) or paused for flow control (anyio's send waits)
        transport.write(data)
        return len(data)

    return write
