"""GatherWriter: many buffers, one writev, and the transport takes over whatever the socket refuses."""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import Any

import numpy as np
import pytest
import trustme

from pingthings.server.service.gather_write import IOV_MAX, GatherWriter

# GatherWriter writes to asyncio transports (grpclib's server runs on asyncio only).
asyncio_only = pytest.mark.parametrize("anyio_backend", ["asyncio"])


class Sink(asyncio.Protocol):
    """Collects every byte a connection receives."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.closed = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.data += data

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set_result(None)


async def _pair(ssl_context: tuple[ssl.SSLContext, ssl.SSLContext] | None = None) -> tuple[Any, Sink, Any]:
    """A connected (client transport, server-side sink, server) over 127.0.0.1."""
    loop = asyncio.get_running_loop()
    sink_ready: asyncio.Future[Sink] = loop.create_future()

    def make_sink() -> Sink:
        sink = Sink()
        if not sink_ready.done():
            sink_ready.set_result(sink)
        return sink

    server_ctx, client_ctx = ssl_context if ssl_context else (None, None)
    server = await loop.create_server(make_sink, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    transport, _ = await loop.create_connection(
        asyncio.Protocol,
        "127.0.0.1",
        port,
        ssl=client_ctx,
        server_hostname="localhost" if client_ctx else None,
    )
    return transport, await sink_ready, server


def _pieces(rng: np.random.Generator, count: int) -> list[Any]:
    """Buffers of every kind GatherWriter is given: bytes, memoryviews and read-only numpy views."""
    out: list[Any] = []
    for i in range(count):
        n = int(rng.integers(1, 5000))
        if i % 3 == 0:
            out.append(rng.bytes(n))
        elif i % 3 == 1:
            out.append(memoryview(rng.bytes(n))[1:])
        else:
            array = rng.integers(0, 2**62, n)[::1]
            array.setflags(write=False)
            out.append(array)
    return out


async def _finish(transport: Any, sink: Sink, server: Any, expected: bytes) -> None:
    transport.close()
    await sink.closed
    server.close()
    await server.wait_closed()
    assert bytes(sink.data) == expected


@asyncio_only
@pytest.mark.anyio
async def test_pieces_arrive_whole_and_in_order_across_flushes() -> None:
    transport, sink, server = await _pair()
    writer = GatherWriter(transport)
    assert writer.gathers
    rng = np.random.default_rng(1)
    expected = bytearray()
    for round_ in range(5):
        pieces = _pieces(rng, 300 + IOV_MAX * (round_ == 2))  # one round needs several writev calls
        for piece in pieces:
            size = memoryview(piece).nbytes
            writer.add(piece, size)
            expected += memoryview(piece).cast("B")
        assert writer.buffered == sum(memoryview(p).nbytes for p in pieces)
        writer.flush()
        assert writer.buffered == 0
    await _finish(transport, sink, server, bytes(expected))


@asyncio_only
@pytest.mark.anyio
async def test_what_a_full_socket_refuses_is_queued_by_the_transport_in_order() -> None:
    transport, sink, server = await _pair()
    sock = transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)  # the kernel takes little per call
    writer = GatherWriter(transport)
    big = np.arange(500_000, dtype=np.int64)  # 4 MB: far more than the socket takes at once
    big.setflags(write=False)
    writer.add(b"head", 4)
    writer.add(big, big.nbytes)
    writer.flush()
    assert transport.get_write_buffer_size() > 0  # the rest waits in the transport
    writer.add(b"tail", 4)  # later flushes must queue behind it, not jump ahead
    writer.flush()
    await _finish(transport, sink, server, b"head" + big.tobytes() + b"tail")


@asyncio_only
@pytest.mark.anyio
async def test_a_tls_connection_is_written_through_the_transport() -> None:
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    transport, sink, server = await _pair((server_ctx, client_ctx))
    writer = GatherWriter(transport)
    assert not writer.gathers  # raw bytes on the socket would bypass TLS
    rng = np.random.default_rng(2)
    pieces = _pieces(rng, 200)
    for piece in pieces:
        writer.add(piece, memoryview(piece).nbytes)
    writer.flush()
    await _finish(transport, sink, server, b"".join(memoryview(p).cast("B") for p in pieces))
