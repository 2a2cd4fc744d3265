"""gRPC length-prefixed message framing.

Every gRPC message on the wire is a 5-byte prefix (one flag byte: 1 if compressed; four bytes big-endian
length) followed by the payload. A message may span many HTTP/2 DATA frames and one frame may carry many
messages, so :class:`MessageReader` keeps the received chunks as a list of views and copies a message's bytes
only once, when it is complete and does not lie inside a single chunk.

A compressed message (flag 1) is inflated as its bytes arrive, with the encoding the reply's
``grpc-encoding`` header named (see :mod:`.compression`); the receive limit applies to the inflated size.
"""

from __future__ import annotations

import struct

from .chunk_queue import ChunkQueue
from .compression import IDENTITY, CompressionError, Inflater, check_encoding

PREFIX = struct.Struct(">BI")
PREFIX_SIZE = PREFIX.size


class FramingError(ValueError):
    """The peer sent bytes that are not a valid gRPC message stream."""


def frame_message(payload: bytes | bytearray | memoryview, compressed: bool = False) -> bytes:
    """Return ``payload`` with its gRPC prefix in front (flag 1 if ``compressed``)."""
    return PREFIX.pack(1 if compressed else 0, len(payload)) + bytes(payload)


class MessageReader:
    """Incremental decoder turning a byte stream of DATA frame contents into gRPC message payloads.

    Parameters
    ----------
    max_message_size
        Largest payload accepted; a larger announced length raises :class:`FramingError` before buffering,
        and a compressed message that inflates past it raises as soon as it does.
    """

    __slots__ = ("_encoding", "_inflater", "_max", "_need", "_queue")

    def __init__(self, max_message_size: int) -> None:
        self._queue = ChunkQueue()
        self._need = -1  # payload length of the message being assembled, -1 while the prefix is incomplete
        self._max = max_message_size
        self._encoding: str | None = None  # the reply's grpc-encoding, once its headers arrived
        self._inflater: Inflater | None = None  # set while a compressed message is being read

    def set_encoding(self, name: bytes | str | None) -> None:
        """Record the reply's ``grpc-encoding`` header (None or ``identity``: nothing is compressed).

        An encoding this client cannot read is only an error if a compressed message arrives.
        """
        if isinstance(name, bytes):
            name = name.decode("ascii", "replace")
        self._encoding = None if name is None or name.strip().lower() == IDENTITY else name

    @property
    def partial(self) -> bool:
        """True while bytes of an incomplete message (or prefix) are buffered."""
        return self._queue.size > 0 or self._need >= 0

    def pending_bytes(self) -> int:
        """Bytes received but not yet returned as part of a message (prefixes already parsed excluded)."""
        return self._queue.size

    def feed(self, data: bytes | memoryview) -> list[memoryview | bytes]:
        """Add received bytes (kept by reference: they must not change afterwards) and return every
        message they complete, in order."""
        out: list[memoryview | bytes] = []
        if not len(data):
            return out
        view = memoryview(data).cast("B")
        if self._need < 0 and not self._queue.size and len(view) >= PREFIX_SIZE:
            # The usual small reply: exactly one whole uncompressed message in one DATA frame.
            flag, length = PREFIX.unpack_from(view)
            if flag == 0 and length == len(view) - PREFIX_SIZE and length <= self._max:
                return [view[PREFIX_SIZE:]]
        self._queue.append(view)
        while True:
            if self._need < 0:
                if self._queue.size < PREFIX_SIZE:
                    return out
                flag, length = PREFIX.unpack(self._take(PREFIX_SIZE))
                if flag == 1:
                    self._inflater = self._start_inflating()
                elif flag != 0:
                    raise FramingError(f"invalid gRPC message flag byte {flag}")
                if length > self._max:
                    raise FramingError(
                        f"server sent a {length}-byte message, above the limit of {self._max} bytes"
                    )
                self._need = length
            if self._inflater is not None:
                message = self._inflate_available()
                if message is None:
                    return out
                out.append(message)
                continue
            if self._queue.size < self._need:
                return out
            out.append(self._take(self._need))
            self._need = -1

    def _start_inflating(self) -> Inflater:
        """An inflater for the compressed message whose prefix was just read."""
        if self._encoding is None:
            raise FramingError(
                "server sent a compressed message without naming its compression (no grpc-encoding header)"
            )
        try:
            return Inflater(check_encoding(self._encoding), self._max)
        except CompressionError as exc:
            raise FramingError(str(exc)) from None

    def _inflate_available(self) -> bytes | None:
        """Inflate the buffered bytes of the current compressed message (and drop them); return the whole
        inflated message once its last byte is in, else None."""
        inflater = self._inflater
        assert inflater is not None
        count = min(self._queue.size, self._need)
        try:
            for view in self._queue.take(count) if count else ():
                inflater.feed(view)
            self._need -= count
            if self._need:
                return None
            message = inflater.finish()
        except CompressionError as exc:
            raise FramingError(str(exc)) from None
        self._inflater = None
        self._need = -1
        return message

    def _take(self, size: int) -> memoryview | bytes:
        """Remove and return the next ``size`` buffered bytes: a view when they lie in one chunk, else
        one joined copy (``b"".join``, which does not zero-fill first as ``bytearray(size)`` would)."""
        if size == 0:
            return b""
        views = self._queue.take(size)
        if len(views) == 1:
            return views[0]
        joined = b"".join(views)
        return joined if size <= PREFIX_SIZE else memoryview(joined)
