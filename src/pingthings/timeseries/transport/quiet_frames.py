"""Keep h2 from formatting every received DATA frame for its trace log.

h2 evaluates ``repr(frame)`` for each received frame before handing it to its (by default silent) trace
logger. For a DATA frame, hyperframe's repr re-serialises the body and hex-encodes all of it, only to
truncate the text to 20 characters: with 1 MiB frames this cost more CPU than everything else in a stream
(measured: about 80 % of the client's time). Here DATA frames leave the frame buffer as a subclass whose repr
shows only the length, and h2's dispatch table learns to route that subclass like a DATA frame.

This relies on two h2 internals (``incoming_buffer`` and ``_frame_dispatch_table``); if a future h2 changes
them, :func:`install` leaves the connection untouched and returns False: slower, never wrong.
"""

from __future__ import annotations

import h2.connection
import h2.frame_buffer
from hyperframe.frame import DataFrame, Frame


class QuietDataFrame(DataFrame):
    """A DATA frame whose repr does not hex-dump the payload."""

    __slots__ = ()

    def _body_repr(self) -> str:
        return f"<{len(self.data)} bytes>"


class QuietFrameBuffer(h2.frame_buffer.FrameBuffer):
    """h2's frame buffer, yielding DATA frames as :class:`QuietDataFrame`."""

    def __next__(self) -> Frame:
        frame = super().__next__()
        if frame.__class__ is DataFrame:
            frame.__class__ = QuietDataFrame
        return frame


def install(conn: h2.connection.H2Connection) -> bool:
    """Switch a fresh client connection to the quiet frame buffer; return whether it was possible."""
    table = getattr(conn, "_frame_dispatch_table", None)
    buffer = getattr(conn, "incoming_buffer", None)
    if not isinstance(table, dict) or DataFrame not in table:
        return False
    if type(buffer) is not h2.frame_buffer.FrameBuffer or len(getattr(buffer, "_data", b"?")):
        return False  # unknown buffer, or bytes already received
    quiet = QuietFrameBuffer(server=False)
    quiet.max_frame_size = buffer.max_frame_size
    table[QuietDataFrame] = table[DataFrame]
    conn.incoming_buffer = quiet
    return True
