"""Large replies written as DATA frames of views: whole and in order for every kind of peer.

Peers differ in what they let the server send: our client takes 1 MiB frames into 32 MiB windows,
grpclib (configured here with the smallest windows HTTP/2 allows by default) 16 KiB frames into 64 KiB
windows, and grpcio its own choice. Reads come from a cached server (replies made of block views, produced
in the event loop) and an uncached one (worker thread, freshly decoded blocks).
"""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Iterator
from typing import Any

import grpclib.client
import grpclib.config
import numpy as np
import pyarrow as pa
import pytest
from grpclib.const import Cardinality
from grpclib.encoding.base import CodecBase

import pingthings.timeseries as pt
from pingthings._proto import v5api
from pingthings.server import Server
from pingthings.server.grpc.call import Call
from pingthings.server.grpc.dispatch import Handler, Method, MethodTable
from pingthings.server.grpc.shutdown import GrpcServer
from pingthings.server.listener import bind_listener, bound_port
from pingthings.server.service.arrow_reply import Segments
from pingthings.server.service.arrow_rpcs import RAW_ROWS_PER_MESSAGE
from pingthings.wire import arrow as wire_arrow
from pingthings.wire import points
from pingthings.wire.limits import MIN_TIME, TIME_LIMIT
from tests.server.helpers import create, insert
from tests.server.rawclient import RawClient

N = 3 * RAW_ROWS_PER_MESSAGE + 4321


class _Bytes(CodecBase):
    """grpclib codec that passes payloads through as bytes."""

    __content_subtype__ = "proto"

    def encode(self, message: Any, message_type: Any) -> bytes:
        return bytes(message)

    def decode(self, data: bytes, message_type: Any) -> bytes:
        return data


@pytest.fixture(scope="module")
def uncached_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with Server(tmp_path_factory.mktemp("uncached"), listen="127.0.0.1:0", cache_mb=0) as srv:
        yield srv


def _stream_with_points(endpoint: str) -> tuple[bytes, np.ndarray, np.ndarray, int]:
    rng = np.random.default_rng(5)
    times = np.cumsum(rng.integers(1, 50_000, N)).astype(np.int64) + 10**15
    values = rng.normal(size=N)
    with RawClient(endpoint) as client:
        uu = create(client, f"direct/{uuidlib.uuid4().hex[:8]}")
        version = insert(client, uu, times, values)
    return uu, times, values, version


def _check_arrow(payloads: list[bytes], times: np.ndarray, values: np.ndarray, version: int) -> None:
    replies = [v5api.ArrowRawValuesResponse.parse(p) for p in payloads]
    assert all(r.stat is None and r.version_major == version for r in replies)
    tables = [wire_arrow.ipc_to_table(r.arrow_bytes) for r in replies]
    assert [t.num_rows for t in tables[:-1]] == [RAW_ROWS_PER_MESSAGE] * (len(tables) - 1)
    table = pa.concat_tables(tables)
    assert np.array_equal(table.column("time").cast(pa.int64()).to_numpy(), times)
    assert np.array_equal(table.column("value").to_numpy(), values)


@pytest.mark.parametrize("which", ["cached", "uncached"])
def test_grpcio_peer_gets_every_point(which: str, server: Server, uncached_server: Server) -> None:
    srv = server if which == "cached" else uncached_server
    uu, times, values, version = _stream_with_points(srv.endpoint)
    request = v5api.ArrowRawValuesParams(uuid=uu, start=MIN_TIME, end=TIME_LIMIT - 1)
    with RawClient(srv.endpoint) as client:
        for _ in range(2):  # the second read of the cached server is served from the cache
            _check_arrow(client.stream("ArrowRawValues", request), times, values, version)
        raw = [
            points.decode_raw_values(p)
            for p in client.stream(
                "RawValues", v5api.RawValuesParams(uuid=uu, start=MIN_TIME, end=TIME_LIMIT - 1)
            )
        ]
    assert np.array_equal(np.concatenate([r.times for r in raw]), times)
    assert np.array_equal(np.concatenate([r.values for r in raw]), values)


# grpclib clients run on asyncio only.
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("which", ["cached", "uncached"])
@pytest.mark.anyio
async def test_small_windows_and_frames_still_deliver_every_point(
    which: str, server: Server, uncached_server: Server
) -> None:
    srv = server if which == "cached" else uncached_server
    uu, times, values, version = _stream_with_points(srv.endpoint)
    host, port = srv.endpoint.rsplit(":", 1)
    config = grpclib.config.Configuration(
        http2_connection_window_size=65_535, http2_stream_window_size=65_535
    )
    channel = grpclib.client.Channel(host, int(port), codec=_Bytes(), config=config)
    try:
        request = bytes(v5api.ArrowRawValuesParams(uuid=uu, start=MIN_TIME, end=TIME_LIMIT - 1))
        async with channel.request(
            "/v5api.BTrDB/ArrowRawValues", Cardinality.UNARY_STREAM, bytes, bytes, timeout=60
        ) as call:
            await call.send_message(request, end=True)
            payloads = [p async for p in call]
    finally:
        channel.close()
    _check_arrow(payloads, times, values, version)


@pytest.mark.anyio
@pytest.mark.parametrize("which", ["cached", "uncached"])
async def test_our_client_reads_large_streams_on_both_backends(
    which: str, server: Server, uncached_server: Server
) -> None:
    srv = server if which == "cached" else uncached_server
    uu, times, values, _ = _stream_with_points(srv.endpoint)
    async with await pt.AsyncClient.connect(endpoint=srv.endpoint) as client:
        stream = await client.stream_from_uuid(uuidlib.UUID(bytes=uu))
        for _ in range(2):
            table = await stream.raw_values(int(times[0]), int(times[-1]) + 1)
            assert np.array_equal(table.column("time").cast(pa.int64()).to_numpy(), times)
            assert np.array_equal(table.column("value").to_numpy(), values)
        middle = await stream.raw_values(int(times[1000]), int(times[N - 1000]))
        assert np.array_equal(middle.column("value").to_numpy(), values[1000 : N - 1000])


class _OpenPolicy:
    """Admits every call and runs its handler as it is."""

    def admit(self, call: Call) -> None:
        pass

    def started(self, call: Call) -> None:
        pass

    def finished(self, call: Call) -> None:
        pass

    async def run(self, call: Call, handler: Handler) -> None:
        await handler(call)


class _BigReplies:
    """A service whose one method sends large buffers, a Segments and a view, as they are."""

    def __init__(self, messages: list[Any]) -> None:
        self.messages = messages

    async def handle(self, call: Call) -> None:
        await call.recv_message()
        for message in self.messages:
            await call.send_message(message)

    def grpc_methods(self) -> dict[str, Method]:
        return {"/test.Big/Get": Method(self.handle, unary=False)}


# grpclib clients run on asyncio only; the server is ours.
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("window", [65_535, 4 << 20])
@pytest.mark.anyio
async def test_buffers_segments_and_views_arrive_whole_through_any_window(window: int) -> None:
    rng = np.random.default_rng(3)
    column = rng.normal(size=300_000)
    column.setflags(write=False)
    pieces = [b"head", column[:1000], column[1000:], b"tail"]
    messages: list[Any] = [rng.bytes(200_000), Segments(pieces), memoryview(rng.bytes(1 << 20))]
    server = GrpcServer(MethodTable([_BigReplies(messages)]), _OpenPolicy(), max_message_bytes=1 << 20)
    sock = bind_listener("127.0.0.1", 0)
    await server.start(sock, None)
    config = grpclib.config.Configuration(
        http2_connection_window_size=window, http2_stream_window_size=window
    )
    channel = grpclib.client.Channel("127.0.0.1", bound_port(sock), codec=_Bytes(), config=config)
    try:
        async with channel.request(
            "/test.Big/Get", Cardinality.UNARY_STREAM, bytes, bytes, timeout=60
        ) as call:
            await call.send_message(b"", end=True)
            got = [p async for p in call]
    finally:
        channel.close()
        server.close()
        await server.wait_closed(5)
    assert got == [bytes(messages[0]), Segments(pieces).join(), bytes(messages[2])]


# grpclib clients run on asyncio only.
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.anyio
async def test_reads_abandoned_midway_leave_the_connection_usable(server: Server) -> None:
    """Twenty reads reset mid-reply on one small-window connection; the next read is whole."""
    uu, times, values, version = _stream_with_points(server.endpoint)
    host, port = server.endpoint.rsplit(":", 1)
    window = 1 << 20  # far less than 20 abandoned reads could take if their bytes went missing
    config = grpclib.config.Configuration(
        http2_connection_window_size=window, http2_stream_window_size=window
    )
    channel = grpclib.client.Channel(host, int(port), codec=_Bytes(), config=config)
    request = bytes(v5api.ArrowRawValuesParams(uuid=uu, start=MIN_TIME, end=TIME_LIMIT - 1))
    path = "/v5api.BTrDB/ArrowRawValues"
    try:
        for _ in range(20):
            async with channel.request(path, Cardinality.UNARY_STREAM, bytes, bytes, timeout=30) as call:
                await call.send_message(request, end=True)
                assert await call.recv_message() is not None
                await call.cancel()  # RST_STREAM while the server is mid-reply
        async with channel.request(path, Cardinality.UNARY_STREAM, bytes, bytes, timeout=30) as call:
            await call.send_message(request, end=True)
            payloads = [p async for p in call]
    finally:
        channel.close()
    _check_arrow(payloads, times, values, version)
