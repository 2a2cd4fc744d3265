"""One socket write per reply: small writes to a connection's transport are joined until the loop turns.

grpclib writes each HEADERS, DATA and trailers frame of a reply with its own ``transport.write``, so a small
unary reply costs three ``send`` system calls on the server and wakes the client up to three times. Installed
on a connection's asyncio transport, :class:`WriteCoalescer` keeps small writes (immutable ``bytes``, as h2
produces them) and writes them out together from a callback scheduled on the event loop: after the task
that produced them yields, before the loop waits for I/O again. Nothing waits longer than one turn of the
loop, so flow control and ordering are as before.

Anything that may bypass ``write`` sees the held bytes first: a large or mutable buffer flushes them before
it is written, and ``get_write_buffer_size()`` (which :mod:`.gather_write` asks before writing straight to
the socket) flushes them before it answers; so do ``close``, ``abort`` and ``writelines``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

COALESCE_MAX = 16_384
"""Largest ``bytes`` write that is held back to be joined with others; larger ones go out at once."""

_MARK = "_pingthings_coalescer"
_log = logging.getLogger(__name__)


class WriteCoalescer:
    """Holds the small writes to one transport until the loop's next turn (see the module docstring)."""

    __slots__ = ("_abort", "_close", "_loop", "_pending", "_scheduled", "_size", "_write", "_writelines")

    def __init__(self, transport: asyncio.WriteTransport, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._write = transport.write
        self._writelines = transport.writelines
        self._close = transport.close
        self._abort = transport.abort
        self._size = transport.get_write_buffer_size
        self._pending: list[bytes] = []
        self._scheduled = False

    def write(self, data: Any) -> None:
        """``transport.write``: hold small ``bytes``, pass anything else on after what is held."""
        if type(data) is bytes and len(data) <= COALESCE_MAX:
            if data:
                self._pending.append(data)
                if not self._scheduled:
                    self._scheduled = True
                    self._loop.call_soon(self.flush)
            return
        self.flush()
        self._write(data)

    def writelines(self, lines: Any) -> None:
        self.flush()
        self._writelines(lines)

    def flush(self) -> None:
        """Write out everything held, in one ``write``."""
        self._scheduled = False
        pending = self._pending
        if pending:
            data = pending[0] if len(pending) == 1 else b"".join(pending)
            pending.clear()
            self._write(data)

    def get_write_buffer_size(self) -> int:
        self.flush()
        return int(self._size())

    def close(self) -> None:
        self.flush()
        self._close()

    def abort(self) -> None:
        self._pending.clear()
        self._abort()


def coalesce_writes(transport: Any) -> None:
    """Install a :class:`WriteCoalescer` on an asyncio transport, once; do nothing for anything else."""
    if getattr(transport, _MARK, None) is not None:
        return
    if not isinstance(transport, asyncio.WriteTransport) or not hasattr(transport, "__dict__"):
        _log.debug("write coalescing not installed on %r: not a plain asyncio transport", transport)
        return
    coalescer = WriteCoalescer(transport, asyncio.get_running_loop())
    vars(transport).update(
        write=coalescer.write,
        writelines=coalescer.writelines,
        close=coalescer.close,
        abort=coalescer.abort,
        get_write_buffer_size=coalescer.get_write_buffer_size,
    )
    setattr(transport, _MARK, coalescer)


def coalesce_stream_writes(stream: Any) -> None:
    """Install write coalescing on the connection of a grpclib server stream (see :func:`coalesce_writes`)."""
    transport = getattr(getattr(stream, "_stream", None), "_transport", None)
    if transport is not None:
        coalesce_writes(transport)
