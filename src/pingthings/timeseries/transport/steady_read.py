"""Keep reading a plain TCP connection on asyncio, instead of switching reading on and off per receive.

anyio's asyncio ``SocketStream.receive`` resumes the transport's reading before it waits and pauses it
again afterwards: two ``epoll_ctl`` system calls and the selector's bookkeeping on every receive that
has to wait, which is every receive of a small call (its reply is not there yet). A reply of a few
hundred bytes costs that much again as its own parsing.

:func:`steady_reader` leaves the transport reading. The bytes asyncio reads go, as before, into anyio's
own queue (the stream's protocol), so anyio's ``send``, ``aclose`` and end-of-stream handling keep
working unchanged; :meth:`SteadyReader.receive` takes them from there, joining what is queued up to the
size asked (one read round for what several socket reads brought). The queue is bounded: once it holds
:data:`QUEUE_LIMIT` bytes the transport stops reading until a receive brings it under half that, so a
server that sends faster than the client reads is held back by TCP, as with anyio's own receive.

End of stream, a connection error and a closed stream are left to anyio's ``receive``, which raises the
same exceptions as always. anyio does not publish its transport and protocol: this uses the private
``SocketStream._transport`` and ``_protocol`` (``read_queue``, ``read_event``, ``is_at_eof``,
``exception``). When a future anyio lacks them, :func:`steady_reader` reports the fallback once
(:func:`pingthings.fastpaths.report_fallback`, name ``"steady-read"``) and returns None: receives then go
through anyio's ``receive``, slower, never wrong. On trio, receives read the socket directly already.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

import anyio.abc
import anyio.streams.tls

from pingthings.fastpaths import report_fallback

__all__ = ["QUEUE_LIMIT", "SteadyReader", "steady_reader"]

QUEUE_LIMIT = 16 << 20
"""Bytes read from the socket and not yet taken by a receive, above which the transport stops reading."""


class SteadyReader:
    """Receives from an anyio asyncio socket stream whose transport keeps reading (see the module).

    Parameters
    ----------
    stream
        The anyio stream (its ``receive`` handles end of stream and errors).
    transport, protocol
        The stream's asyncio transport and anyio protocol.
    on_chunk
        Called with the size of every piece the transport reads (the connection's read-size policy).
    limit
        The queue bound (:data:`QUEUE_LIMIT`).
    """

    __slots__ = (
        "_event",
        "_limit",
        "_nudged",
        "_on_chunk",
        "_paused",
        "_protocol",
        "_queue",
        "_queued",
        "_stream",
        "_transport",
    )

    def __init__(
        self,
        stream: anyio.abc.ByteStream,
        transport: asyncio.Transport,
        protocol: asyncio.Protocol,
        on_chunk: Callable[[int], None] | None,
        limit: int = QUEUE_LIMIT,
    ) -> None:
        self._stream = stream
        self._transport = transport
        self._protocol = protocol
        self._queue: deque[bytes] = protocol.read_queue  # type: ignore[attr-defined]
        self._event: asyncio.Event = protocol.read_event  # type: ignore[attr-defined]
        self._on_chunk = on_chunk
        self._limit = limit
        self._queued = sum(len(chunk) for chunk in self._queue)
        self._paused = False
        self._nudged = False
        # The transport calls the instance's data_received, which now also counts and bounds the queue.
        protocol.data_received = self._data_received  # type: ignore[method-assign]
        transport.resume_reading()

    def _data_received(self, data: bytes) -> None:
        self._queue.append(bytes(data))
        self._queued += len(data)
        self._event.set()
        if self._on_chunk is not None:
            self._on_chunk(len(data))
        if self._queued >= self._limit and not self._paused:
            self._paused = True
            self._transport.pause_reading()

    def nudge(self) -> None:
        """Make the receive that is waiting now (or the next one, if it would wait) return ``b""``.

        The connection's keepalive timer uses it to get its reader back without a cancel scope per read.
        """
        self._nudged = True
        self._event.set()

    def pending(self) -> bool:
        """True if bytes, end of stream or an error wait to be received."""
        protocol = self._protocol
        return bool(self._queue) or protocol.is_at_eof or protocol.exception is not None  # type: ignore[attr-defined]

    async def receive(self, max_bytes: int) -> bytes:
        """The bytes queued (up to ``max_bytes``), waiting for some if there are none.

        Returns ``b""`` only after :meth:`nudge` when nothing arrived. Raises what anyio's ``receive``
        raises at end of stream, on a connection error or once closed.
        """
        queue = self._queue
        if not queue:
            protocol = self._protocol
            if (
                not protocol.is_at_eof  # type: ignore[attr-defined]
                and protocol.exception is None  # type: ignore[attr-defined]
                and not self._transport.is_closing()
            ):
                if not self._nudged:
                    self._event.clear()
                    await self._event.wait()
                if self._nudged and not queue:
                    self._nudged = False
                    self._event.clear()
                    return b""
            if not queue:
                return await self._stream.receive(max_bytes)  # anyio raises EndOfStream or the error
        self._nudged = False
        data = queue.popleft()
        if len(data) > max_bytes:
            data, rest = data[:max_bytes], data[max_bytes:]
            queue.appendleft(rest)
        elif queue and len(data) < max_bytes:
            pieces = [data]
            size = len(data)
            while queue and size < max_bytes:
                piece = queue.popleft()
                if size + len(piece) > max_bytes:
                    cut = max_bytes - size
                    piece, rest = piece[:cut], piece[cut:]
                    queue.appendleft(rest)
                pieces.append(piece)
                size += len(piece)
            data = b"".join(pieces)
        self._queued -= len(data)
        if not queue:
            self._event.clear()
        if self._paused and self._queued < self._limit // 2:
            self._paused = False
            self._transport.resume_reading()
        return data


def steady_reader(
    stream: anyio.abc.ByteStream, on_chunk: Callable[[int], None] | None
) -> SteadyReader | None:
    """A :class:`SteadyReader` for ``stream`` (a plain TCP stream on asyncio), or None.

    None for TLS streams and trio streams (nothing to gain), and, with a fallback report, for an anyio
    whose asyncio stream no longer looks as expected.
    """
    if isinstance(stream, anyio.streams.tls.TLSStream):
        return None
    backend = type(stream).__module__  # anyio's stream classes live in anyio._backends._<name>
    if not backend.endswith("._asyncio"):
        return None
    transport = getattr(stream, "_transport", None)
    protocol = getattr(stream, "_protocol", None)
    if (
        isinstance(transport, asyncio.Transport)
        and isinstance(protocol, asyncio.Protocol)
        and isinstance(getattr(protocol, "read_queue", None), deque)
        and isinstance(getattr(protocol, "read_event", None), asyncio.Event)
        and hasattr(protocol, "is_at_eof")
        and hasattr(protocol, "exception")
    ):
        return SteadyReader(stream, transport, protocol, on_chunk)
    report_fallback("steady-read", f"no asyncio transport and read queue in {type(stream).__qualname__}")
    return None
