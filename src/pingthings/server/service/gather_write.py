"""Write many buffers to an asyncio socket transport with one gathering system call.

A raw-read reply is a few hundred pieces: frame headers, and views of the decoded blocks that hold the
points. ``transport.write`` takes one buffer, so the pieces would first be joined — a copy of every
point. When the connection is plain TCP and the transport has nothing queued, :class:`GatherWriter`
instead hands the pieces straight to ``os.writev`` on the socket, so the kernel copies each point from
the block it lives in. Whatever the socket does not take at once (its buffer is full) is joined and
given to ``transport.write``, which queues it and takes care of everything from there: ordering (no
later write goes to the socket while the transport holds queued bytes), flow control and errors.

On TLS connections (the bytes must go through the TLS layer) or transports without a socket, every
flush is one ``transport.write`` of the joined pieces.
"""

from __future__ import annotations

import os
from typing import Any

#: Most buffers one ``writev`` call accepts on Linux (``IOV_MAX``).
IOV_MAX = 1024


def _socket_fd(transport: Any) -> int | None:
    """The file descriptor to write to directly, or None when that would be wrong or impossible."""
    if (
        transport.get_extra_info("ssl_object") is not None
        or transport.get_extra_info("sslcontext") is not None
    ):
        return None
    sock = transport.get_extra_info("socket")
    if sock is None or not callable(getattr(transport, "get_write_buffer_size", None)):
        return None
    try:
        fd = sock.fileno()
    except (AttributeError, OSError):
        return None
    return fd if isinstance(fd, int) and fd >= 0 else None


class GatherWriter:
    """Collects buffers for one transport and writes them out together.

    Parameters
    ----------
    transport
        An asyncio transport; direct writes are used only for a plain socket transport.
    """

    __slots__ = ("_fd", "_pieces", "_sizes", "_transport", "buffered")

    def __init__(self, transport: Any) -> None:
        self._transport = transport
        self._fd = _socket_fd(transport)
        self._pieces: list[Any] = []
        self._sizes: list[int] = []
        self.buffered = 0

    @property
    def gathers(self) -> bool:
        """Whether flushes may go to the socket directly (plain TCP)."""
        return self._fd is not None

    def add(self, piece: Any, size: int) -> None:
        """Queue ``piece`` (a C-contiguous buffer) of ``size`` bytes; it must not change until flushed."""
        if size:
            self._pieces.append(piece)
            self._sizes.append(size)
            self.buffered += size

    def flush(self) -> None:
        """Write everything queued, in order."""
        pieces, sizes = self._pieces, self._sizes
        if not pieces:
            return
        self._pieces, self._sizes, self.buffered = [], [], 0
        transport = self._transport
        first = 0
        if self._fd is not None and not transport.is_closing() and transport.get_write_buffer_size() == 0:
            first = self._write_direct(pieces, sizes)
        if first < len(pieces):
            transport.write(b"".join(pieces[first:]))

    def _write_direct(self, pieces: list[Any], sizes: list[int]) -> int:
        """``writev`` as much as the socket takes; return the index of the first piece not fully sent
        (a partly sent piece is replaced, in ``pieces``, by its unsent tail)."""
        fd = self._fd
        assert fd is not None
        i = 0
        while i < len(pieces):
            end = min(i + IOV_MAX, len(pieces))
            try:
                sent = os.writev(fd, pieces[i:end])
            except OSError:  # full (EAGAIN), interrupted, or broken: the transport takes it from here
                return i
            while i < end and sent >= sizes[i]:
                sent -= sizes[i]
                i += 1
            if i < end:  # the socket took less than the batch
                if sent:
                    pieces[i] = memoryview(pieces[i]).cast("B")[sent:]
                return i
        return i
