"""What the client knows about one HTTP/2 stream: the call's view (replies, status) and the protocol's
(windows, which side has ended).

The protocol state (:mod:`.http2_client`) writes it while processing received frames; the call that owns
the stream (:mod:`.calls`) reads it.
"""

from __future__ import annotations

from collections import deque

from .framing import MessageReader


class StreamState:
    """One stream of a client connection.

    Parameters
    ----------
    stream_id
        The stream's odd identifier.
    max_message_size
        Largest reply message accepted on it.
    send_window
        The server's initial flow-control window for new streams (bytes we may send).
    recv_window
        Our initial window for the stream (bytes the server may send before we give credit back).
    """

    __slots__ = (
        "closed",
        "credit",
        "ended",
        "error",
        "headers",
        "local_closed",
        "messages",
        "reader",
        "recv_window",
        "refused",
        "reset_code",
        "send_window",
        "stream_id",
        "trailers",
        "unacked",
    )

    def __init__(self, stream_id: int, max_message_size: int, send_window: int, recv_window: int) -> None:
        self.stream_id = stream_id
        #: Reply headers (the first block), then trailers (the second).
        self.headers: list[tuple[bytes, bytes]] | None = None
        self.trailers: list[tuple[bytes, bytes]] | None = None
        #: Complete reply messages not yet taken by the call.
        self.messages: deque[bytes | memoryview] = deque()
        self.reader = MessageReader(max_message_size)
        #: The server sent END_STREAM.
        self.ended = False
        #: The RST_STREAM code that ended the stream (either side), or None.
        self.reset_code: int | None = None
        #: A failure of the stream or of its connection, raised by the call.
        self.error: BaseException | None = None
        #: The server refused the stream before processing it (safe to send again).
        self.refused = False
        #: Bytes received whose flow-control credit has not been given back yet.
        self.unacked = 0
        #: Consumed bytes whose credit is owed to the server but not yet sent (updates are batched).
        self.credit = 0
        #: Bytes of DATA we may still send on the stream (the stream's part of the window).
        self.send_window = send_window
        #: Bytes of DATA the server may still send before we give credit back.
        self.recv_window = recv_window
        #: We sent END_STREAM (or reset the stream).
        self.local_closed = False
        #: Closed both ways or reset: no longer counted against the server's stream limit.
        self.closed = False

    @property
    def finished(self) -> bool:
        """True once the server will send nothing more on this stream."""
        return self.ended or self.reset_code is not None or self.error is not None
