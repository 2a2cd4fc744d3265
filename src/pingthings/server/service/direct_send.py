"""Send large reply messages as HTTP/2 DATA frames that point into the reply buffer.

grpclib sends a message by prepending the 5-byte gRPC prefix (a copy), reading it back in frame-sized
pieces through ``BytesIO`` (a copy), and letting h2 serialise each DATA frame (header and body joined,
appended to h2's output buffer, and copied out of it again: three more). For the multi-megabyte replies
of a raw read those five copies cost the server more CPU than reading the points. Here h2 still does
all its bookkeeping — the stream's state machine and both flow-control windows move exactly as if it
had built the frames — but the frames are never serialised by h2: their 9-byte headers are made
here, and headers and bodies (the caller's buffers, or slices of them) go to the socket together
through :class:`~.gather_write.GatherWriter`.

h2 builds a frame's bytes in ``H2Connection._prepare_for_sending``; while one send runs, that method
is shadowed on the connection object to collect the frames instead. This and the few grpclib stream
attributes used are internals: :func:`direct_sender` checks them all and returns None when any is
missing (reporting it once, see :mod:`pingthings.fastpaths`), and callers then use grpclib's own
``send_message`` — slower, never wrong.
"""

from __future__ import annotations

import struct
from typing import Any

import grpclib.server
from hyperframe.frame import DataFrame

from pingthings.fastpaths import report_fallback
from pingthings.server.service.arrow_reply import Segments
from pingthings.server.service.gather_write import GatherWriter

#: Messages shorter than this go through grpclib unchanged (the copies cost less than the bookkeeping).
DIRECT_MIN_BYTES = 64 * 1024

_FRAME_HEADER = struct.Struct(">I B I")  # (length << 8) | type, flags, stream id
_DATA = 0x0
_FLAGS_NONE = 0x0


class _Extent:
    """Stands in for a frame body inside h2: it has a length and no bytes."""

    __slots__ = ("size",)

    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size


class DirectSender:
    """Writes messages of one grpclib server stream straight to its transport.

    Built by :func:`direct_sender`, which checks that every internal it relies on is present.
    """

    def __init__(self, stream: grpclib.server.Stream[Any, Any]) -> None:
        self._server_stream = stream
        self._stream: Any = stream._stream
        self._conn = self._stream._h2_connection
        self._transport = self._stream._transport
        self._connection = self._stream.connection

    async def send(self, message: Any, compressed: bool = False) -> None:
        """Send ``message`` (a buffer, or a :class:`~.arrow_reply.Segments`) as one gRPC message;
        ``compressed`` sets the message's compressed flag (the bytes are already compressed)."""
        server_stream = self._server_stream
        if not server_stream._send_initial_metadata_done:
            await server_stream.send_initial_metadata()
        (message,) = await server_stream._dispatch.send_message(message)
        if isinstance(message, Segments):
            parts, sizes = message.parts, message.sizes
        else:
            parts, sizes = [message], [memoryview(message).nbytes]
        size = sum(sizes)
        prefix = (b"\x01" if compressed else b"\x00") + size.to_bytes(4, "big")
        await self._write_message([prefix, *parts], [len(prefix), *sizes], size + len(prefix))
        server_stream._send_message_done = True
        server_stream._messages_sent += 1
        self._connection.messages_sent += 1

    async def _write_message(self, parts: list[Any], sizes: list[int], total: int) -> None:
        """Write ``parts`` (of ``sizes`` bytes, ``total`` in all) as DATA frames, as the windows allow.

        Every frame h2 has counted is written out before this waits for anything and when it stops
        for any reason (the peer reset the stream, the call was cancelled): counted but unsent bytes
        would be lost from the connection's flow-control window for good.
        """
        stream, conn = self._stream, self._conn
        out = GatherWriter(self._transport)
        index, offset = 0, 0  # position in ``parts``
        sent = 0
        try:
            while sent < total:
                if not self._connection.write_ready.is_set():
                    out.flush()
                    await self._connection.write_ready.wait()
                window = conn.local_flow_control_window(stream.id)
                if window <= 0:
                    out.flush()
                    stream.window_updated.clear()
                    await stream.window_updated.wait()
                    continue
                size = min(window, conn.max_outbound_frame_size, total - sent)
                self._account(size)
                pending = conn.data_to_send()
                out.add(pending, len(pending))
                out.add(_FRAME_HEADER.pack((size << 8) | _DATA, _FLAGS_NONE, stream.id), _FRAME_HEADER.size)
                need = size
                while need:
                    part, part_size = parts[index], sizes[index]
                    take = min(need, part_size - offset)
                    if take == part_size:
                        out.add(part, take)
                    else:
                        out.add(memoryview(part).cast("B")[offset : offset + take], take)
                    need -= take
                    offset += take
                    if offset == part_size:
                        index, offset = index + 1, 0
                sent += size
                stream.data_sent += size
                self._connection.data_sent += size
                self._connection.data_send_process()
        finally:
            out.flush()

    def _account(self, size: int) -> None:
        """Let h2 record a DATA frame of ``size`` bytes on the stream without building its bytes."""
        conn: Any = self._conn  # typed loosely: one of its methods is shadowed for the call
        frames: list[Any] = []
        conn._prepare_for_sending = frames.extend
        try:
            conn.send_data(self._stream.id, _Extent(size))
        finally:
            del conn._prepare_for_sending
        if len(frames) != 1 or not isinstance(frames[0], DataFrame) or frames[0].flags:
            raise RuntimeError("h2 prepared unexpected frames for a DATA send")  # pragma: no cover


#: The grpclib attributes a direct send reads or updates, on the server stream, on its protocol
#: stream and on the connection.
_REQUIRED_STREAM = (
    "_stream",
    "_send_initial_metadata_done",
    "_dispatch",
    "_send_message_done",
    "_messages_sent",
)
_REQUIRED_PROTOCOL = ("_h2_connection", "_transport", "connection", "window_updated", "id", "data_sent")
_REQUIRED_CONNECTION = ("write_ready", "data_sent", "messages_sent", "data_send_process")


def direct_sender(stream: grpclib.server.Stream[Any, Any]) -> DirectSender | None:
    """A :class:`DirectSender` for ``stream``, or None if grpclib or h2 no longer look as expected.

    None is reported once through :func:`pingthings.fastpaths.report_fallback`.
    """
    missing = _missing_internals(stream)
    if missing is not None:
        report_fallback("direct-send", missing)
        return None
    return DirectSender(stream)


def _missing_internals(stream: grpclib.server.Stream[Any, Any]) -> str | None:
    """What a direct send needs and ``stream`` lacks, or None when everything is there."""
    if not all(hasattr(stream, name) for name in _REQUIRED_STREAM):
        return "grpclib's server Stream lacks one of " + ", ".join(_REQUIRED_STREAM)
    proto = stream._stream
    if not all(hasattr(proto, name) for name in _REQUIRED_PROTOCOL):
        return "grpclib's protocol stream lacks one of " + ", ".join(_REQUIRED_PROTOCOL)
    conn = proto._h2_connection
    if not callable(getattr(type(conn), "_prepare_for_sending", None)):
        return "h2's H2Connection has no _prepare_for_sending"
    if "_prepare_for_sending" in vars(conn):  # somebody else shadows it already
        return "h2's _prepare_for_sending is already shadowed on this connection"
    if not all(hasattr(proto.connection, name) for name in _REQUIRED_CONNECTION):
        return "grpclib's connection lacks one of " + ", ".join(_REQUIRED_CONNECTION)
    return None
