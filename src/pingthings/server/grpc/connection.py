"""What a call needs from its connection (implemented by :class:`~.protocol.GrpcProtocol`).

Kept apart so that :mod:`.call` does not import the protocol that creates calls.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol


class Connection(Protocol):
    """The connection side of a call: windows, writes, credits."""

    loop: asyncio.AbstractEventLoop
    #: The peer's connection-level window for what we send.
    send_window: int
    #: The largest frame the peer accepts.
    peer_max_frame: int
    #: The transport asked us to stop writing for now.
    paused: bool

    def write(self, data: bytes) -> None:
        """Queue bytes for the socket (written once per loop turn)."""
        ...

    def send_now(self) -> None:
        """Write everything queued at once, instead of at the end of the loop turn."""
        ...

    def write_pieces(self, pieces: list[Any], sizes: list[int]) -> None:
        """Write buffers in order, large ones without joining them."""
        ...

    async def wait_writable(self) -> None:
        """Until a window grows, the transport resumes or the connection ends."""
        ...

    def release(self, call: Any, length: int, stream_too: bool, urgent: bool = False) -> None:
        """Give consumed request bytes back to the peer."""
        ...

    def call_done(self, call: Any) -> None:
        """The call sent its trailers."""
        ...
