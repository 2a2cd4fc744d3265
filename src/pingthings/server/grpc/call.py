"""One gRPC call: its request bytes as they arrive, its reply as it leaves.

Handlers see a :class:`Call`, the little they need of a call:
``await recv_message()`` / ``async for message in call`` for request messages and
``await send_message(reply)`` for replies; the layer under them ends the call with trailers.

Request messages are read from their 5-byte gRPC prefix: the announced length is checked against
``max_message_bytes`` before any of the body is waited for (:class:`MessageTooLarge`, and the
stream is reset once the refusal is sent); compressed messages are inflated when the call said
how (``grpc-encoding``). Reply messages go out as DATA frames within both flow-control windows;
large buffers are written as views (:meth:`~.protocol.GrpcProtocol.write_pieces`), never joined.
A unary reply that fits the windows leaves with its headers and trailers in one write
(:meth:`Call.send_unary`).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

import anyio.to_thread
import betterproto2

from pingthings.server.errors import MessageTooLarge, WrongArgs
from pingthings.server.grpc.connection import Connection
from pingthings.server.grpc.eager import first_step_alone
from pingthings.server.grpc.status import (
    RESPONSE_HEADERS,
    RESPONSE_HEADERS_GZIP,
    headers_frame,
    trailers_block,
)
from pingthings.server.service.arrow_reply import Segments
from pingthings.server.service.compression import THREAD_THRESHOLD, gzip_bytes, inflate
from pingthings.wire.http2 import frames

_PREFIX_BYTES = 5
#: Replies smaller than this are joined into one buffer; larger ones are written as views.
JOIN_BELOW = 64 << 10


def _reply_parts(reply: Any) -> tuple[list[Any], list[int]]:
    """The buffers of a reply and their sizes (a message is serialised, a buffer taken as it is)."""
    if isinstance(reply, bytes):
        return [reply], [len(reply)]
    if isinstance(reply, betterproto2.Message):
        data = bytes(reply)
        return [data], [len(data)]
    if isinstance(reply, Segments):
        return list(reply.parts), list(reply.sizes)
    view = memoryview(reply).cast("B")
    return [view], [view.nbytes]


class Call:
    """The state of one call on one connection (created by the protocol, driven by its handler)."""

    __slots__ = (
        "_buffered",
        "_chunks",
        "_claimed",
        "_waiter",
        "_want",
        "admin",
        "compress_replies",
        "conn",
        "deadline_timer",
        "ended",
        "headers",
        "headers_sent",
        "max_message",
        "path",
        "recv_window",
        "refused",
        "request_encoding",
        "request_ended",
        "reset",
        "send_window",
        "stream_id",
        "task",
        "timed_out",
    )

    def __init__(
        self,
        conn: Connection,
        stream_id: int,
        path: str,
        headers: list[tuple[bytes, bytes]],
        send_window: int,
        max_message: int,
        request_encoding: str | None,
        compress_replies: bool,
    ) -> None:
        self.conn = conn
        self.stream_id = stream_id
        self.path = path
        #: The request's headers as decoded (names lower case).
        self.headers = headers
        self.send_window = send_window
        #: What the peer may still send on this stream (our grant, less what arrived unreleased).
        self.recv_window = 0
        self.max_message = max_message
        self.request_encoding = request_encoding
        self.compress_replies = compress_replies
        self.admin = False
        self.task: asyncio.Task[None] | None = None
        self.deadline_timer: asyncio.TimerHandle | None = None
        self.timed_out = False
        self.headers_sent = False
        self.ended = False  # trailers sent
        self.reset = False  # the stream is gone (reset by either side, or the connection closed)
        self.request_ended = False
        self.refused = False
        self._chunks: deque[Any] = deque()
        self._buffered = 0
        self._claimed = 0  # buffered bytes already given back to the peer
        self._want = 0
        self._waiter: asyncio.Future[None] | None = None

    # -- request side (the protocol feeds it) ---------------------------------------------------

    @property
    def buffered(self) -> int:
        """Request bytes received and not yet taken by the handler."""
        return self._buffered

    def feed(self, data: Any) -> None:
        """Request bytes from a DATA frame (the connection window already counted them)."""
        if data:
            self._chunks.append(data)
            self._buffered += len(data)
            if self._want:
                self._claim()
                if self._buffered >= self._want:
                    self._wake()

    def end_request(self) -> None:
        """The client ended its side of the stream."""
        self.request_ended = True
        self._wake()

    def abort(self) -> None:
        """The stream is gone: wake any reader and drop what is buffered (returned to the connection)."""
        self.reset = True
        self._wake()
        self.drop_buffer()

    def drop_buffer(self) -> None:
        """Give the unread request bytes back to the connection window and forget them."""
        unclaimed = self._buffered - self._claimed
        self._chunks.clear()
        self._buffered = self._claimed = 0
        if unclaimed > 0:
            self.conn.release(self, unclaimed, stream_too=False)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _claim(self) -> None:
        """Give back at once the buffered bytes the waiting handler asked for (see :mod:`.flow`)."""
        claim = min(self._buffered, self._want) - self._claimed
        if claim > 0:
            self._claimed += claim
            self.conn.release(self, claim, stream_too=True, urgent=True)

    def _take(self, size: int) -> bytes:
        chunks = self._chunks
        first = chunks[0]
        if len(first) == size:
            chunks.popleft()
            data = bytes(first)
        elif len(first) > size:
            data = bytes(first[:size])
            chunks[0] = first[size:]
        else:
            parts, need = [], size
            while need:
                chunk = chunks[0]
                if len(chunk) <= need:
                    parts.append(chunk)
                    chunks.popleft()
                    need -= len(chunk)
                else:
                    parts.append(chunk[:need])
                    chunks[0] = chunk[need:]
                    need = 0
            data = b"".join(parts)
        self._buffered -= size
        claimed = min(self._claimed, size)
        self._claimed -= claimed
        if size > claimed:
            self.conn.release(self, size - claimed, stream_too=not self.request_ended)
        return data

    async def _read(self, size: int) -> bytes | None:
        """``size`` request bytes; fewer (or None if none) when the request ends first."""
        while self._buffered < size and not self.request_ended and not self.reset:
            self._want = size
            self._claim()
            self._waiter = self.conn.loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
                self._want = 0
        if self._buffered >= size:
            return self._take(size) if size else b""
        if not self._buffered:
            return None
        return self._take(self._buffered)

    async def recv_message(self) -> bytes | None:
        """The next request message, inflated if compressed; None once the request has ended.

        Raises
        ------
        MessageTooLarge
            The prefix announces more than ``max_message_bytes`` (nothing of the body is read).
        WrongArgs
            A truncated message, or a compressed one without a known ``grpc-encoding``.
        """
        if self.refused:
            return None
        head = await self._read(_PREFIX_BYTES)
        if head is None:
            return None
        if len(head) != _PREFIX_BYTES:
            raise WrongArgs("the request ended inside a message's 5-byte length prefix")
        flag = head[0]
        size = int.from_bytes(head[1:5], "big")
        if flag and self.request_encoding is None:
            raise WrongArgs("compressed request messages are not supported (no grpc-encoding was agreed)")
        if size > self.max_message:
            self.refused = True
            raise MessageTooLarge(
                f"request message of {size} bytes exceeds the server's limit of {self.max_message} bytes "
                "(max_message_bytes); send the data in smaller requests"
            )
        body = await self._read(size)
        if size and (body is None or len(body) != size):
            raise WrongArgs(f"the request message announced {size} bytes but the stream ended before them")
        data = body or b""
        if flag:
            assert self.request_encoding is not None
            data = inflate(data, self.request_encoding)
        return data

    def __aiter__(self) -> Call:
        return self

    async def __anext__(self) -> bytes:
        message = await self.recv_message()
        if message is None:
            raise StopAsyncIteration
        return message

    # -- reply side -------------------------------------------------------------------------------

    def _headers_frame(self) -> bytes:
        self.headers_sent = True
        block = RESPONSE_HEADERS_GZIP if self.compress_replies else RESPONSE_HEADERS
        return headers_frame(self.stream_id, block, False, self.conn.peer_max_frame)

    def send_unary(self, reply: Any) -> bool:
        """Send a unary call's only reply and end the call, in one write, if the windows allow it.

        Returns False (nothing sent) when the reply must take :meth:`send_message` instead: it is
        compressed, larger than a frame or the windows, or the transport asked us to pause.
        """
        conn = self.conn
        if self.headers_sent or self.ended or self.reset or self.compress_replies or conn.paused:
            return False
        if type(reply) is bytes:
            payload = reply
        elif isinstance(reply, betterproto2.Message):
            payload = bytes(reply)
        else:
            return False
        total = len(payload) + _PREFIX_BYTES
        if total > self.send_window or total > conn.send_window or total > conn.peer_max_frame:
            return False
        self.send_window -= total
        conn.send_window -= total
        sid = self.stream_id
        self.headers_sent = True
        self.ended = True
        conn.write(
            b"".join(
                (
                    headers_frame(sid, RESPONSE_HEADERS, False, conn.peer_max_frame),
                    frames.data_header(sid, total, False),
                    b"\x00",
                    len(payload).to_bytes(4, "big"),
                    payload,
                    headers_frame(sid, trailers_block(0, None, True), True, conn.peer_max_frame),
                )
            )
        )
        conn.call_done(self)
        if first_step_alone():
            # The only call of its read: nothing else would share the write, so the reply leaves
            # now, and the rest of this call's unwinding overlaps with the client reading it.
            conn.send_now()
        return True

    async def send_message(self, reply: Any) -> None:
        """Send one reply message (bytes, a buffer, :class:`Segments` or a betterproto2 message)."""
        if self.reset:
            raise asyncio.CancelledError("the stream was reset")
        if self.ended:
            raise RuntimeError("the call has already ended")
        parts, sizes = _reply_parts(reply)
        flag = b"\x00"
        if self.compress_replies:
            data = parts[0] if len(parts) == 1 else b"".join(parts)
            if sum(sizes) >= THREAD_THRESHOLD:
                packed = await anyio.to_thread.run_sync(gzip_bytes, data)
            else:
                packed = gzip_bytes(data)
            parts, sizes, flag = [packed], [len(packed)], b"\x01"
        size = sum(sizes)
        prefix = flag + size.to_bytes(4, "big")
        head = [self._headers_frame()] if not self.headers_sent else []
        await self._send_data(head, [prefix, *parts], [_PREFIX_BYTES, *sizes], size + _PREFIX_BYTES)

    async def _send_data(self, head: list[bytes], parts: list[Any], sizes: list[int], total: int) -> None:
        """Write ``parts`` as DATA frames as the windows allow, after the ``head`` frames."""
        conn = self.conn
        out: list[Any] = head
        out_sizes = [len(h) for h in head]
        index, offset, sent = 0, 0, 0
        sid = self.stream_id
        try:
            while sent < total:
                window = min(self.send_window, conn.send_window)
                if window <= 0 or conn.paused:
                    if out:
                        conn.write_pieces(out, out_sizes)
                        out, out_sizes = [], []
                    await conn.wait_writable()
                    if self.reset:
                        raise asyncio.CancelledError("the stream was reset")
                    continue
                size = min(window, conn.peer_max_frame, total - sent)
                self.send_window -= size
                conn.send_window -= size
                out.append(frames.data_header(sid, size, False))
                out_sizes.append(frames.HEADER_SIZE)
                need = size
                while need:
                    part, part_size = parts[index], sizes[index]
                    take = min(need, part_size - offset)
                    if take == part_size:
                        out.append(part)
                    else:
                        out.append(memoryview(part).cast("B")[offset : offset + take])
                    out_sizes.append(take)
                    need -= take
                    offset += take
                    if offset == part_size:
                        index, offset = index + 1, 0
                sent += size
        finally:
            if out and not self.reset:
                conn.write_pieces(out, out_sizes)

    def end(self, status: int = 0, message: str | None = None, http_status: int = 200) -> None:
        """Send the trailers (a trailers-only response if nothing was sent) and close the call."""
        if self.ended or self.reset:
            return
        self.ended = True
        block = trailers_block(status, message, self.headers_sent, http_status)
        self.headers_sent = True
        self.conn.write(headers_frame(self.stream_id, block, True, self.conn.peer_max_frame))
        self.conn.call_done(self)


__all__ = ["Call"]
