"""Let the asyncio socket transport read a large reply in large pieces.

asyncio's socket transport asks the socket for at most 256 KiB per ``recv`` (its private ``max_size``)
and anyio hands each piece to one ``receive`` call. A cold raw read of 10^7 points (160 MB) then takes
~620 read rounds, each with an event-loop turn and two epoll changes (anyio pauses reading between
receives); worse, a 1 MiB DATA frame never lies inside one piece, so every reply message is joined from
its pieces: one more copy of every byte. :func:`widen_reads` raises the transport's read size to the
connection's, so a round takes whatever the socket holds, up to that size. Measured on one cold
10^7-point read (``bench/cold_read.py``'s data, 2-core VM under load): 617 → 102–200 read rounds, the
client's CPU 224–312 → 164–205 ms.

anyio does not publish its transport: this uses the private ``SocketStream._transport`` (and the
transport's ``max_size``). When a future anyio or asyncio lacks them, :func:`widen_reads` reports the
fallback once (:func:`pingthings.fastpaths.report_fallback`) and reads stay at asyncio's size: slower,
never wrong. On trio ``receive`` reads the socket directly with the size asked, so nothing is needed.
"""

from __future__ import annotations

import asyncio

import anyio.abc

from pingthings.fastpaths import report_fallback


def widen_reads(stream: anyio.abc.ByteStream, size: int) -> bool:
    """Make each socket read of ``stream`` (a plain TCP stream) take up to ``size`` bytes.

    Returns True when reads of ``size`` bytes are possible (trio, or asyncio's transport widened), False
    when the fast path fell back.
    """
    backend = type(stream).__module__  # anyio's stream classes live in anyio._backends._<name>
    if backend.endswith("._trio"):
        return True
    if backend.endswith("._asyncio"):
        transport = getattr(stream, "_transport", None)
        if isinstance(transport, asyncio.Transport) and isinstance(getattr(transport, "max_size", None), int):
            transport.max_size = max(size, transport.max_size)  # type: ignore[attr-defined]
            return True
    report_fallback("large-reads", f"no asyncio transport with max_size in {type(stream).__qualname__}")
    return False
