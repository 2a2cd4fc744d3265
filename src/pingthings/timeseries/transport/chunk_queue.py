"""A queue of received byte chunks, read from the front as views without copying.

The gRPC message layer (:mod:`.framing`) cuts the received DATA bodies into messages. It keeps what
arrived as it arrived and hands out the next ``n`` bytes as views of it. A piece that lies inside one
chunk is one view; a piece that straddles chunks is the list of views of its parts, for the caller to
join or pass on.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable


class ChunkQueue:
    """Received chunks (as byte views) and how far the first one has been consumed."""

    __slots__ = ("_chunks", "_head", "size")

    def __init__(self) -> None:
        self._chunks: deque[memoryview] = deque()
        self._head = 0  # bytes of the first chunk already consumed
        #: Bytes queued and not yet taken.
        self.size = 0

    def append(self, view: memoryview) -> None:
        """Queue one chunk (a byte view; the bytes behind it must not change afterwards)."""
        if len(view):
            self._chunks.append(view)
            self.size += len(view)

    def extend(self, views: Iterable[memoryview]) -> None:
        """Queue several chunks in order."""
        for view in views:
            self.append(view)

    def peek(self, count: int) -> bytes:
        """The next ``count`` bytes (at most what is queued), left in the queue."""
        out = bytearray()
        head = self._head
        for chunk in self._chunks:
            out += chunk[head : head + count - len(out)]
            head = 0
            if len(out) >= count:
                break
        return bytes(out)

    def take(self, count: int) -> list[memoryview]:
        """Remove the next ``count`` bytes (``count`` must not exceed :attr:`size`) and return them as
        views: one view when they lie in one chunk, else one per chunk they touch."""
        self.size -= count
        views: list[memoryview] = []
        while count:
            chunk = self._chunks[0]
            head = self._head
            part = min(len(chunk) - head, count)
            views.append(chunk[head : head + part])
            count -= part
            if head + part == len(chunk):
                self._chunks.popleft()
                self._head = 0
            else:
                self._head = head + part
        return views
