"""A frame buffer for h2 that hands DATA frame bodies on as views of the received bytes.

h2 cuts received bytes into frames with its ``FrameBuffer``. For DATA frames, which carry nearly every
byte of a large read, that costs three copies of the payload: appending each received chunk to one
``bytearray``, slicing a frame's body out of it, and ``tobytes()`` in hyperframe's ``parse_body``. h2
itself never looks inside a DATA body (it only counts its length for flow control), and the gRPC
message reader (:mod:`.framing`) takes views. So :class:`ZeroCopyFrameBuffer` keeps the received
chunks as they are and gives a DATA frame a view of the chunk holding its body or, when the body
straddles several receives, a :class:`SplitBody` of views of each: the message reader copies a
message's bytes at most once, when the message itself is complete. Other frames are small and parsed
by hyperframe as usual.

DATA frames also leave as :class:`QuietDataFrame`: h2 evaluates ``repr(frame)`` of every received frame
for its (normally silent) trace log, and hyperframe's repr hex-dumps the whole body first — with 1 MiB
frames that alone once cost more than everything else in a stream.

This relies on two h2 internals (``incoming_buffer`` and ``_frame_dispatch_table``); if a future h2 changes
them, :func:`install` leaves the connection untouched and returns False: slower, never wrong.
"""

from __future__ import annotations

from typing import Any

import h2.connection
import h2.frame_buffer
from h2.exceptions import FrameDataMissingError, ProtocolError
from hyperframe.exceptions import InvalidDataError, InvalidFrameError
from hyperframe.frame import DataFrame, Frame

from pingthings.fastpaths import report_fallback

from .chunk_queue import ChunkQueue

FRAME_HEADER_SIZE = 9


class QuietDataFrame(DataFrame):
    """A DATA frame whose repr does not hex-dump the payload."""

    __slots__ = ()

    def _body_repr(self) -> str:
        return f"<{len(self.data)} bytes>"


class SplitBody:
    """A DATA frame body lying across several received chunks: views of its part of each, in order.

    h2 only asks a body for its length; the gRPC message reader reads the views.
    """

    __slots__ = ("nbytes", "views")

    def __init__(self, views: list[memoryview], nbytes: int) -> None:
        self.views = views
        self.nbytes = nbytes

    def __len__(self) -> int:
        return self.nbytes

    def tobytes(self) -> bytes:
        """The body as one ``bytes`` object."""
        return b"".join(self.views)


class ZeroCopyFrameBuffer(h2.frame_buffer.FrameBuffer):
    """h2's client-side frame buffer, without copying DATA frame bodies."""

    def __init__(self) -> None:
        super().__init__(server=False)
        self._queue = ChunkQueue()

    def add_data(self, data: Any) -> None:  # any bytes-like object (h2 types it as its own Buffer)
        """Queue received bytes (kept by reference: the caller must not modify them afterwards)."""
        self._queue.append(memoryview(data).cast("B"))

    def _take(self, size: int) -> memoryview | SplitBody:
        """Consume the next ``size`` bytes: a view when they lie in one chunk, else a :class:`SplitBody`."""
        if size == 0:
            return memoryview(b"")
        views = self._queue.take(size)
        return views[0] if len(views) == 1 else SplitBody(views, size)

    def __next__(self) -> Frame:
        while True:
            queued = self._queue.size
            if queued < FRAME_HEADER_SIZE:
                raise StopIteration
            try:
                frame, length = Frame.parse_frame_header(memoryview(self._queue.peek(FRAME_HEADER_SIZE)))
            except (InvalidDataError, InvalidFrameError) as err:
                raise ProtocolError(f"Received frame with invalid header: {err!s}") from err
            if queued < FRAME_HEADER_SIZE + length:
                raise StopIteration
            self._validate_frame_length(length)
            self._queue.take(FRAME_HEADER_SIZE)
            body: memoryview | SplitBody | None = self._take(length)
            if frame.__class__ is DataFrame:
                frame.__class__ = QuietDataFrame
                if "PADDED" not in frame.flags:
                    # What DataFrame.parse_body does for an unpadded frame, minus its copy.
                    frame.data = body  # type: ignore[assignment]
                    frame.body_len = length
                    body = None
            if body is not None:
                if isinstance(body, SplitBody):
                    body = memoryview(body.tobytes())
                try:
                    frame.parse_body(body)
                except InvalidDataError as err:
                    raise ProtocolError("Received frame with non-compliant data") from err
                except InvalidFrameError as err:
                    raise FrameDataMissingError("Frame data missing or invalid") from err
            ready = self._update_header_buffer(frame)
            if ready is not None:
                return ready


def install(conn: h2.connection.H2Connection) -> bool:
    """Switch a fresh client connection to :class:`ZeroCopyFrameBuffer`; return whether it was possible.

    When it is not, the fallback is reported once through :func:`pingthings.fastpaths.report_fallback`.
    """
    table = getattr(conn, "_frame_dispatch_table", None)
    buffer = getattr(conn, "incoming_buffer", None)
    if not isinstance(table, dict) or DataFrame not in table:
        return _declined("h2 has no frame dispatch table with DataFrame")
    if type(buffer) is not h2.frame_buffer.FrameBuffer or len(getattr(buffer, "_data", b"?")):
        return _declined("unknown incoming buffer, or bytes already received")
    if not callable(getattr(buffer, "_update_header_buffer", None)):
        return _declined("h2's FrameBuffer has no _update_header_buffer")
    if not callable(getattr(buffer, "_validate_frame_length", None)):
        return _declined("h2's FrameBuffer has no _validate_frame_length")
    replacement = ZeroCopyFrameBuffer()
    replacement.max_frame_size = buffer.max_frame_size
    table[QuietDataFrame] = table[DataFrame]
    conn.incoming_buffer = replacement
    return True


def _declined(reason: str) -> bool:
    report_fallback("zero-copy-frames", reason)
    return False
