"""Read a large reply in large pieces, and small replies as before.

asyncio's socket transport asks the socket for at most 256 KiB per ``recv`` (its private ``max_size``)
and anyio hands each piece to one ``receive`` call. A cold raw read of 10^7 points (160 MB) then takes
~620 read rounds, each with an event-loop turn and two epoll changes (anyio pauses reading between
receives); worse, a 1 MiB DATA frame never lies inside one piece, so every reply message is joined from
its pieces: one more copy of every byte. Measured on one cold 10^7-point read (``bench/cold_read.py``'s
data, 2-core VM under load), reading up to 4 MiB at a time: 617 → 102–200 read rounds, the client's CPU
224–312 → 164–205 ms.

Asking for 4 MiB on every read costs small calls, though (a 4 MiB buffer allocated per ``recv``: about
+35 µs of client CPU per Info call on asyncio). So :class:`ReadSize` widens reads only while they come
back full — more is waiting in the socket — and narrows them again after the first read that does not.

anyio does not publish its asyncio transport: this uses the private ``SocketStream._transport`` (and
the transport's ``max_size``). When a future anyio or asyncio lacks them, :func:`read_size_for` reports
the fallback once (:func:`pingthings.fastpaths.report_fallback`) and reads stay at asyncio's size:
slower, never wrong. On trio ``receive`` reads the socket directly with the size asked.
"""

from __future__ import annotations

import asyncio

import anyio.abc

from pingthings.fastpaths import report_fallback

#: Bytes a read asks for while large replies stream in.
LARGE_READ = 4 << 20


class ReadSize:
    """How many bytes the next ``receive`` of a connection asks for.

    Parameters
    ----------
    small
        The size of ordinary reads (a read that returns at least this much widens the next one).
    transport
        The asyncio transport whose ``max_size`` follows the size, or None (trio: the size asked is
        the size read).
    """

    __slots__ = ("_transport", "current", "small")

    def __init__(self, small: int, transport: asyncio.Transport | None) -> None:
        self.small = small
        self.current = small
        self._transport = transport

    @property
    def ask(self) -> int:
        """The ``max_bytes`` to pass to ``receive``: the size itself on trio; on asyncio the largest
        size, so that anyio never splits (copies) a piece the transport read before a narrowing."""
        return self.current if self._transport is None else LARGE_READ

    def after_read(self, received: int) -> None:
        """Choose the next read's size from what the last one returned."""
        size = LARGE_READ if received >= self.small else self.small
        if size != self.current:
            self.current = size
            if self._transport is not None:
                self._transport.max_size = size  # type: ignore[attr-defined]


def read_size_for(stream: anyio.abc.ByteStream, small: int) -> ReadSize | None:
    """A :class:`ReadSize` for ``stream`` (a plain TCP stream), or None when reads cannot be widened.

    ``small`` is the size of ordinary reads on trio; on asyncio it is the transport's own size.
    """
    backend = type(stream).__module__  # anyio's stream classes live in anyio._backends._<name>
    if backend.endswith("._trio"):
        return ReadSize(small, None)
    if backend.endswith("._asyncio"):
        transport = getattr(stream, "_transport", None)
        native = getattr(transport, "max_size", None)
        if isinstance(transport, asyncio.Transport) and isinstance(native, int) and native > 0:
            return ReadSize(native, transport)
    report_fallback("large-reads", f"no asyncio transport with max_size in {type(stream).__qualname__}")
    return None
