"""Connection loss: server restart between calls, refused connections, closed channels, broken peers."""

from __future__ import annotations

import contextlib

import anyio
import anyio.abc
import pytest
from grpc_test_servers import SERVER_KINDS_FOR_TESTS, ServerThread, method, running

from pingthings.timeseries.transport import Channel, ChannelError, GrpcStatusError, TransportError

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("kind", SERVER_KINDS_FOR_TESTS)
async def test_server_restart_between_calls(kind: str) -> None:
    first = ServerThread(kind).start()
    port = first.port
    async with Channel("127.0.0.1", port) as ch:
        try:
            assert await ch.unary(method("Unary"), b"1") == b"echo:1"
            old_connection = ch._conn
        finally:
            await anyio.to_thread.run_sync(first.stop)
        with running(kind, port=port):
            assert await ch.unary(method("Unary"), b"2") == b"echo:2"
            assert ch._conn is not old_connection


@pytest.mark.parametrize("kind", SERVER_KINDS_FOR_TESTS)
async def test_call_while_server_is_down_fails_then_recovers(kind: str) -> None:
    first = ServerThread(kind).start()
    port = first.port
    async with Channel("127.0.0.1", port, connect_timeout=5) as ch:
        assert await ch.unary(method("Unary"), b"1") == b"echo:1"
        await anyio.to_thread.run_sync(first.stop)
        with pytest.raises(TransportError) as info:
            await ch.unary(method("Unary"), b"down")
        assert f"127.0.0.1:{port}" in str(info.value)
        with running(kind, port=port):
            assert await ch.unary(method("Unary"), b"3") == b"echo:3"


async def test_running_stream_fails_cleanly_when_server_stops(server_kind: str) -> None:
    srv = ServerThread(server_kind).start()
    from grpc_test_servers import stream_request

    async with Channel("127.0.0.1", srv.port) as ch:
        with pytest.raises(ChannelError) as info:
            async with ch.server_stream(method("Stream"), stream_request(1, 10, then="hang")) as messages:
                async for _ in messages:
                    await anyio.to_thread.run_sync(srv.stop)
    # grpclib and grpcio end a running call differently on shutdown (status or connection loss); both are
    # errors of the channel naming the endpoint, never a low-level exception.
    assert isinstance(info.value, GrpcStatusError | TransportError)
    assert f"127.0.0.1:{srv.port}" in str(info.value)


async def test_connection_refused_is_a_transport_error() -> None:
    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener:
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with Channel("127.0.0.1", port) as ch:
        with pytest.raises(TransportError) as info:
            await ch.unary(method("Unary"), b"")
    assert f"127.0.0.1:{port}" in str(info.value) and "connecting" in str(info.value)
    assert info.value.status == 14


async def test_closed_channel_refuses_calls(server: ServerThread) -> None:
    ch = Channel("127.0.0.1", server.port)
    assert await ch.unary(method("Unary"), b"x") == b"echo:x"
    await ch.aclose()
    with pytest.raises(TransportError, match="channel closed"):
        await ch.unary(method("Unary"), b"x")


async def test_aclose_fails_a_running_call(server: ServerThread) -> None:
    from grpc_test_servers import stream_request

    ch = Channel("127.0.0.1", server.port)
    with pytest.raises(TransportError, match="channel closed"):
        async with ch.server_stream(method("Stream"), stream_request(1, 10, then="hang")) as messages:
            async for _ in messages:
                await ch.aclose()


@pytest.mark.parametrize("reply", [b"", b"HTTP/1.1 400 Bad Request\r\n\r\n", b"\x00" * 64])
async def test_peer_that_does_not_speak_http2(reply: bytes) -> None:
    async def answer(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
                await stream.receive()
                if reply:
                    await stream.send(reply)

    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener:
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, answer)
            async with Channel("127.0.0.1", port) as ch:
                with pytest.raises(TransportError) as info:
                    await ch.unary(method("Unary"), b"", timeout=10)
            tg.cancel_scope.cancel()
    assert f"127.0.0.1:{port}" in str(info.value)


async def test_graceful_shutdown_lets_the_running_call_finish() -> None:
    """grpcio's graceful stop sends GOAWAY, then completes the calls it already has (h2 alone would fail
    them: it refuses every frame after a GOAWAY)."""
    from grpc_test_servers import stream_message, stream_request

    srv = ServerThread("grpcio").start()
    received: list[bytes] = []
    async with Channel("127.0.0.1", srv.port) as ch:
        request = stream_request(2, 100, then="finish-during-shutdown")
        async with anyio.create_task_group() as tg:
            async with ch.server_stream(method("Stream"), request, timeout=30) as messages:
                async for message in messages:
                    received.append(bytes(message))
                    if len(received) == 2:
                        assert await anyio.to_thread.run_sync(srv.probe.wait_for, "hanging", 1)
                        tg.start_soon(anyio.to_thread.run_sync, srv.stop, 10.0)
            draining = ch._conn
        assert draining is not None and draining._goaway  # the GOAWAY arrived while the call was running
    assert received == [stream_message(i, 100) for i in range(3)]


async def test_calls_queued_behind_a_failing_connect_share_its_failure() -> None:
    # A listener that accepts TCP but never answers the TLS handshake: each connect attempt times out.
    from pingthings.timeseries.transport import client_ssl_context

    async def hold(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await anyio.sleep_forever()

    failures: list[BaseException] = []

    async def call(ch: Channel) -> None:
        try:
            await ch.unary(method("Unary"), b"")
        except TransportError as exc:
            failures.append(exc)

    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener:
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, hold)
            ch = Channel("127.0.0.1", port, ssl_context=client_ssl_context(), connect_timeout=0.5)
            started = anyio.current_time()
            async with anyio.create_task_group() as calls:
                for _ in range(10):
                    calls.start_soon(call, ch)
            elapsed = anyio.current_time() - started
            tg.cancel_scope.cancel()
    assert len(failures) == 10
    assert all("within 0.5s" in str(exc) for exc in failures)
    assert elapsed < 3  # one timeout, not ten in a row
