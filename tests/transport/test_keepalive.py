"""Keepalive pings: an unresponsive server is detected; a live one answers and calls go on."""

from __future__ import annotations

import anyio
import anyio.abc
import pytest
from grpc_test_servers import ServerThread, method

from pingthings.timeseries.transport import Channel, GrpcStatusError, TransportError

pytestmark = pytest.mark.anyio


async def test_silent_server_is_detected_by_keepalive() -> None:
    # Accepts the connection and reads everything, but never answers: no SETTINGS, no PING ACK.
    async def swallow(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            async for _ in stream:  # ends quietly when the client disconnects
                pass

    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener:
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, swallow)
            async with Channel("127.0.0.1", port, keepalive_interval=0.2) as ch:
                started = anyio.current_time()
                with pytest.raises(TransportError, match="keepalive ping") as info:
                    await ch.unary(method("Unary"), b"", timeout=30)
                elapsed = anyio.current_time() - started
            tg.cancel_scope.cancel()
    assert f"127.0.0.1:{port}" in str(info.value)
    assert 0.4 <= elapsed < 10


async def test_live_server_answers_pings_while_a_call_waits(server: ServerThread) -> None:
    # The interval leaves the server half a second to answer, even on a busy machine.
    async with Channel("127.0.0.1", server.port, keepalive_interval=0.5) as ch:
        with pytest.raises(GrpcStatusError) as info:
            await ch.unary(method("Hang"), b"", timeout=1.5)
        conn = ch._conn
        assert conn is not None and conn.failure is None
        assert conn._last_ping is not None  # a ping went out and was answered: no keepalive failure
        assert await ch.unary(method("Unary"), b"alive") == b"echo:alive"
    assert info.value.status == 4
