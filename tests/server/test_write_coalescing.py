"""Small writes of one loop turn leave as one socket write, in order, and nothing is held past that turn."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from pingthings.server.service.write_coalescing import COALESCE_MAX, coalesce_writes


async def _transport_pair() -> tuple[Any, socket.socket, list[bytes]]:
    """A real asyncio socket transport writing to ``peer``; ``writes`` records each write it makes."""
    ours, peer = socket.socketpair()
    loop = asyncio.get_running_loop()
    transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, ours)
    writes: list[bytes] = []
    real_write = transport.write

    def counting_write(data: Any) -> None:
        writes.append(bytes(data))
        real_write(data)

    transport.write = counting_write  # type: ignore[method-assign]
    coalesce_writes(transport)
    return transport, peer, writes


def _read(peer: socket.socket, size: int) -> bytes:
    out = b""
    while len(out) < size:
        out += peer.recv(size - len(out))
    return out


def test_one_turn_of_small_writes_is_one_write() -> None:
    async def main() -> None:
        transport, peer, writes = await _transport_pair()
        with peer:
            transport.write(b"headers")
            transport.write(b"data")
            transport.write(b"trailers")
            assert writes == []  # held until the loop turns
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            assert writes == [b"headersdatatrailers"]
            assert _read(peer, 19) == b"headersdatatrailers"
            transport.close()

    asyncio.run(main())


def test_large_writes_and_buffer_queries_keep_the_order() -> None:
    async def main() -> None:
        transport, peer, writes = await _transport_pair()
        with peer:
            big = b"B" * (COALESCE_MAX + 1)
            transport.write(b"first")
            transport.write(big)  # flushes what is held, then goes out itself
            assert writes == [b"first", big]
            transport.write(b"second")
            assert transport.get_write_buffer_size() >= 0  # flushes before answering
            assert writes == [b"first", big, b"second"]
            transport.write(b"last")
            transport.close()  # flushes before closing
            assert writes[-1] == b"last"
            assert _read(peer, len(big) + 15) == b"first" + big + b"secondlast"

    asyncio.run(main())


def test_installed_once() -> None:
    async def main() -> None:
        transport, peer, writes = await _transport_pair()
        with peer:
            coalesce_writes(transport)  # a second install changes nothing
            transport.write(b"x")
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            assert writes == [b"x"]
            transport.close()

    asyncio.run(main())
