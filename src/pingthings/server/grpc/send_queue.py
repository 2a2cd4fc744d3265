"""How many bytes of a connection the kernel still holds for the client.

A reply the server has written may still sit in the kernel's send queue: not sent yet, or sent and
not acknowledged. Closing the socket keeps sending them, unless the client's own bytes arrive
after the close (a WINDOW_UPDATE for the data it is reading, a PING): then the kernel answers with
a reset and drops what the client has not received. :meth:`.protocol.GrpcProtocol.close` asks
this module whether anything is still under way before it closes outright.
"""

from __future__ import annotations

import asyncio
import struct
import sys

if sys.platform == "linux":
    import fcntl
    import termios

    def _kernel_queued(fd: int) -> int | None:
        """SIOCOUTQ (TIOCOUTQ's number on Linux): the socket's unsent plus unacknowledged bytes."""
        return int(struct.unpack("i", fcntl.ioctl(fd, termios.TIOCOUTQ, b"\0\0\0\0"))[0])

else:  # pragma: no cover - elsewhere the kernel does not tell (BSD's TIOCOUTQ is for terminals)

    def _kernel_queued(fd: int) -> int | None:
        return None


def unacknowledged_bytes(transport: asyncio.BaseTransport) -> int | None:
    """Bytes written to ``transport`` that the client has not acknowledged yet: those still in
    asyncio's buffer plus the kernel's send queue. None when the kernel's part cannot be known."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return None
    try:
        queued = _kernel_queued(sock.fileno())
    except (OSError, ValueError):  # closed meanwhile, or not a socket the ioctl knows
        return None
    if queued is None:
        return None
    buffered = transport.get_write_buffer_size() if isinstance(transport, asyncio.WriteTransport) else 0
    return buffered + queued


__all__ = ["unacknowledged_bytes"]
