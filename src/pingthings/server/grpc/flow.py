"""Flow-control windows: what we let peers send (receive side) and what they let us send.

Receive side: a stream may hold at most the window we granted it. Bytes are given back to the
peer (WINDOW_UPDATE) only once consumed: taken by the handler as part of a message, or claimed
for the message the handler is waiting for (its size is checked against ``max_message_bytes``
first), or dropped when the call ends. So a connection never buffers more than its connection
window plus the messages its handlers are reading. Connection credits are batched: one
WINDOW_UPDATE per quarter window consumed, or at once when a handler waits for bytes.

Send side: the peer's windows are plain integers on the connection and on each call; senders
wait (:meth:`~.protocol.GrpcProtocol.wait_writable`) while either is exhausted or the
transport asked us to pause.
"""

from __future__ import annotations

from pingthings.wire.http2 import frames
from pingthings.wire.http2.frames import ConnectionProtocolError, ErrorCode

#: The receive window of each stream (SETTINGS_INITIAL_WINDOW_SIZE we announce).
STREAM_WINDOW = 4 << 20
#: The connection's receive window.
CONNECTION_WINDOW = 8 << 20
#: Most calls open at once on one connection (SETTINGS_MAX_CONCURRENT_STREAMS; h2's default).
MAX_CONCURRENT_STREAMS = 100
#: Largest frame payload we accept (SETTINGS_MAX_FRAME_SIZE): fewer frames for large inserts.
MAX_FRAME_SIZE = 256 << 10
#: Largest request header list (SETTINGS_MAX_HEADER_LIST_SIZE) and header block accepted.
MAX_HEADER_LIST = 64 << 10


class ConnectionCredit:
    """The connection-level receive window and the credits not yet returned to the peer."""

    __slots__ = ("available", "pending", "size")

    def __init__(self, size: int = CONNECTION_WINDOW) -> None:
        self.size = size
        self.available = frames.DEFAULT_WINDOW  # until the peer sees our first WINDOW_UPDATE
        self.pending = 0

    def opening_update(self) -> bytes:
        """The WINDOW_UPDATE that grows the connection window from the default to :attr:`size`."""
        grow = self.size - frames.DEFAULT_WINDOW
        self.available += grow
        return frames.window_update(0, grow) if grow > 0 else b""

    def receive(self, length: int) -> None:
        """Count a DATA frame of ``length`` bytes (padding included) against the window."""
        if length > self.available:
            raise ConnectionProtocolError(
                ErrorCode.FLOW_CONTROL_ERROR,
                f"a DATA frame of {length} bytes exceeds the connection window ({self.available} left)",
            )
        self.available -= length

    def release(self, length: int, urgent: bool = False) -> bytes:
        """Return ``length`` consumed bytes; the WINDOW_UPDATE to send now, or b"" to wait for more."""
        self.pending += length
        if self.pending and (urgent or self.pending >= self.size // 4):
            grant, self.pending = self.pending, 0
            self.available += grant
            return frames.window_update(0, grant)
        return b""


def grown_window(window: int, increment: int, where: str) -> int:
    """``window`` after a WINDOW_UPDATE of ``increment``; overflow past 2**31-1 is an error."""
    window += increment
    if window > frames.MAX_WINDOW:
        raise ConnectionProtocolError(ErrorCode.FLOW_CONTROL_ERROR, f"{where} window grew past 2**31-1")
    return window
