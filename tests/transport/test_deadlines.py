"""Deadlines: expiry raises DEADLINE_EXCEEDED (4), resets the call and keeps the connection."""

from __future__ import annotations

import anyio
import pytest
from grpc_test_servers import ServerThread, method, stream_message, stream_request

from pingthings.timeseries.transport import Channel, GrpcStatusError

pytestmark = pytest.mark.anyio


async def _server_saw_cancellations(server: ServerThread, count: int) -> bool:
    return await anyio.to_thread.run_sync(server.probe.wait_for, "cancelled", count)


async def test_unary_deadline(server: ServerThread) -> None:
    before = server.probe.cancelled
    async with Channel("127.0.0.1", server.port) as ch:
        started = anyio.current_time()
        with pytest.raises(GrpcStatusError) as info:
            await ch.unary(method("Hang"), b"", timeout=0.3)
        elapsed = anyio.current_time() - started
        assert await _server_saw_cancellations(server, before + 1)
        assert await ch.unary(method("Unary"), b"a") == b"echo:a"
    assert info.value.status == 4
    assert "DEADLINE_EXCEEDED (4)" in str(info.value) and "0.3s" in str(info.value)
    assert 0.3 <= elapsed < 5


async def test_stream_deadline_after_some_messages(server: ServerThread) -> None:
    before = server.probe.cancelled
    received = []
    async with Channel("127.0.0.1", server.port) as ch:
        with pytest.raises(GrpcStatusError) as info:
            request = stream_request(3, 50, then="hang")
            async with ch.server_stream(method("Stream"), request, timeout=1.5) as messages:
                async for message in messages:
                    received.append(bytes(message))
        assert await _server_saw_cancellations(server, before + 1)
        assert await ch.unary(method("Unary"), b"b") == b"echo:b"
        assert ch._conn is not None and not ch._conn.streams
    assert received == [stream_message(i, 50) for i in range(3)]
    assert info.value.status == 4


async def test_bidi_deadline_while_waiting_for_replies(server: ServerThread) -> None:
    async with Channel("127.0.0.1", server.port) as ch:
        with pytest.raises(GrpcStatusError) as info:
            async with ch.bidi(method("Bidi"), timeout=1.5) as call:
                await call.send(b"m")
                assert bytes(await call.__anext__()) == b"re:m"
                await call.__anext__()  # the server waits for more requests: the deadline passes
        assert await ch.unary(method("Unary"), b"c") == b"echo:c"
    assert info.value.status == 4


async def test_deadline_does_not_fire_for_fast_calls(server: ServerThread) -> None:
    async with Channel("127.0.0.1", server.port) as ch:
        for index in range(20):
            assert await ch.unary(method("Unary"), b"%d" % index, timeout=10) == b"echo:%d" % index


@pytest.mark.parametrize("keepalive", [5.0, None])
async def test_unary_deadline_on_a_warm_connection(server: ServerThread, keepalive: float | None) -> None:
    # With a connection ready, a unary call enters no cancel scope: its waits check the deadline.
    before = server.probe.cancelled
    async with Channel("127.0.0.1", server.port, keepalive_interval=keepalive) as ch:
        assert await ch.unary(method("Unary"), b"w") == b"echo:w"
        started = anyio.current_time()
        with pytest.raises(GrpcStatusError) as info:
            await ch.unary(method("Hang"), b"", timeout=0.3)
        elapsed = anyio.current_time() - started
        assert await _server_saw_cancellations(server, before + 1)
        assert await ch.unary(method("Unary"), b"a", timeout=5) == b"echo:a"
    assert info.value.status == 4 and "0.3s" in str(info.value)
    assert 0.3 <= elapsed < 2


async def test_concurrent_unary_deadlines_on_a_warm_connection_each_end_on_time(server: ServerThread) -> None:
    # One call reads the socket; the other waits for it to be woken. Each gives up at its own deadline.
    before = server.probe.cancelled
    ended: dict[float, float] = {}
    async with Channel("127.0.0.1", server.port) as ch:
        assert await ch.unary(method("Unary"), b"w") == b"echo:w"
        started = anyio.current_time()

        async def hang(timeout: float) -> None:
            with pytest.raises(GrpcStatusError) as info:
                await ch.unary(method("Hang"), b"", timeout=timeout)
            assert info.value.status == 4
            ended[timeout] = anyio.current_time() - started

        async with anyio.create_task_group() as tg:
            tg.start_soon(hang, 1.2)
            tg.start_soon(hang, 0.3)
            tg.start_soon(hang, 0.6)
        assert await _server_saw_cancellations(server, before + 3)
        assert await ch.unary(method("Unary"), b"b", timeout=5) == b"echo:b"
    assert 0.3 <= ended[0.3] < 0.9 and 0.6 <= ended[0.6] < 1.2 and 1.2 <= ended[1.2] < 3
