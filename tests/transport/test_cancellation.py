"""Cancelling calls: RST_STREAM reaches the server, nothing is left behind, the connection stays usable."""

from __future__ import annotations

import anyio
import pytest
from grpc_test_servers import ServerThread, cancellation_stress, method, stream_message, stream_request

from pingthings.timeseries.transport import Channel

pytestmark = pytest.mark.anyio


async def _server_saw_cancellations(server: ServerThread, count: int) -> bool:
    return await anyio.to_thread.run_sync(server.probe.wait_for, "cancelled", count)


def _assert_no_leftovers(ch: Channel) -> None:
    conn = ch._conn
    assert conn is not None
    assert conn.streams == {}
    assert conn._waiters == {}
    assert not conn._reading


async def test_early_break_resets_the_stream_and_keeps_the_connection(server: ServerThread) -> None:
    before, before_hanging = server.probe.cancelled, server.probe.hanging
    got = []
    async with Channel("127.0.0.1", server.port) as ch:
        async with ch.server_stream(method("Stream"), stream_request(3, 10, then="hang")) as messages:
            async for message in messages:
                got.append(bytes(message))
                if len(got) == 3:
                    assert await anyio.to_thread.run_sync(
                        server.probe.wait_for, "hanging", before_hanging + 1
                    )
                    break
        assert got == [stream_message(i, 10) for i in range(3)]
        assert await _server_saw_cancellations(server, before + 1)
        first = ch._conn
        assert await ch.unary(method("Unary"), b"again") == b"echo:again"
        assert ch._conn is first
        _assert_no_leftovers(ch)


async def test_cancel_scope_mid_stream(server: ServerThread) -> None:
    before = server.probe.cancelled
    seen = 0
    async with Channel("127.0.0.1", server.port) as ch:
        with anyio.CancelScope() as scope:
            async with ch.server_stream(method("Stream"), stream_request(4, 100, then="hang")) as messages:
                async for _ in messages:
                    seen += 1
                    if seen == 4:
                        scope.cancel()  # the next wait for a message is cancelled
        assert scope.cancelled_caught
        assert await _server_saw_cancellations(server, before + 1)
        assert await ch.unary(method("Unary"), b"x") == b"echo:x"
        _assert_no_leftovers(ch)
    assert seen == 4


async def test_exception_in_body_resets_the_stream(server: ServerThread) -> None:
    before = server.probe.cancelled
    async with Channel("127.0.0.1", server.port) as ch:
        with pytest.raises(KeyError):
            async with ch.server_stream(method("Stream"), stream_request(1, 5, then="hang")) as messages:
                async for _ in messages:
                    raise KeyError("boom")
        assert await _server_saw_cancellations(server, before + 1)
        _assert_no_leftovers(ch)


async def test_cancelled_unary_call_keeps_the_connection(server: ServerThread) -> None:
    before_hanging, before = server.probe.hanging, server.probe.cancelled
    async with Channel("127.0.0.1", server.port) as ch:
        async with anyio.create_task_group() as tg:
            tg.start_soon(ch.unary, method("Hang"), b"")
            assert await anyio.to_thread.run_sync(server.probe.wait_for, "hanging", before_hanging + 1)
            tg.cancel_scope.cancel()
        assert await _server_saw_cancellations(server, before + 1)
        assert await ch.unary(method("Unary"), b"y") == b"echo:y"
        _assert_no_leftovers(ch)


async def test_cancelling_readers_never_loses_frames_of_other_streams(server: ServerThread) -> None:
    """Many concurrent streams; some are cancelled by their own break, others by time limits that strike
    anywhere, often while that task is the one reading the socket.

    Every stream must have received an intact prefix of its messages, all of them if not cancelled: a
    cancelled reader must neither drop nor half-process what it received, and someone else must take over.
    """
    async with Channel("127.0.0.1", server.port, max_frame_size=16_384, stream_window=256 << 10) as ch:
        await cancellation_stress(ch, seed=7)
        _assert_no_leftovers(ch)
