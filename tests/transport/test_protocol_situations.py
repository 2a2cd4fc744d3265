"""GOAWAY before processing, refused streams and server stream limits, with a scripted h2 server."""

from __future__ import annotations

import anyio
import fake_h2_server
import pytest

from pingthings.timeseries.transport import Channel, TransportError

pytestmark = pytest.mark.anyio


async def test_goaway_before_processing_is_retried_on_a_new_connection() -> None:
    script = fake_h2_server.Script(goaway_on_first_connection=True)
    async with anyio.create_task_group() as tg:
        port = await fake_h2_server.start(tg, script)
        async with Channel("127.0.0.1", port) as ch:
            assert await ch.unary("/t.S/M", b"a", timeout=10) == b"echo:a"
            assert await ch.unary("/t.S/M", b"b", timeout=10) == b"echo:b"
        tg.cancel_scope.cancel()
    assert script.connections == 2
    assert script.streams_answered == 2


async def test_goaway_before_processing_a_server_stream_is_retried() -> None:
    script = fake_h2_server.Script(goaway_on_first_connection=True)
    async with anyio.create_task_group() as tg:
        port = await fake_h2_server.start(tg, script)
        async with Channel("127.0.0.1", port) as ch, ch.server_stream("/t.S/M", b"s", timeout=10) as messages:
            assert [bytes(m) async for m in messages] == [b"echo:s"]
        tg.cancel_scope.cancel()
    assert script.connections == 2


async def test_a_second_goaway_refuses_the_streams_above_its_last_id() -> None:
    # grpc-go's graceful shutdown: GOAWAY(2^31-1), finish some streams, GOAWAY(last processed stream).
    script = fake_h2_server.Script(two_step_goaway_after=2)
    results: dict[bytes, bytes] = {}
    async with anyio.create_task_group() as tg:
        port = await fake_h2_server.start(tg, script)
        async with Channel("127.0.0.1", port) as ch:

            async def one(request: bytes) -> None:
                results[request] = await ch.unary("/t.S/M", request, timeout=5)

            with anyio.fail_after(10):
                async with anyio.create_task_group() as calls:
                    calls.start_soon(one, b"a")
                    calls.start_soon(one, b"b")
        tg.cancel_scope.cancel()
    assert results == {b"a": b"echo:a", b"b": b"echo:b"}
    assert script.connections == 2  # the refused call went again on a new connection


async def test_refused_stream_is_retried_once() -> None:
    script = fake_h2_server.Script(refuse_first_stream=True)
    async with anyio.create_task_group() as tg:
        port = await fake_h2_server.start(tg, script)
        async with Channel("127.0.0.1", port) as ch:
            assert await ch.unary("/t.S/M", b"r", timeout=10) == b"echo:r"
        tg.cancel_scope.cancel()
    assert script.streams_refused == 1 and script.streams_answered == 1


async def test_server_stream_limit_queues_calls_instead_of_failing() -> None:
    script = fake_h2_server.Script(max_concurrent_streams=2)
    results: dict[int, bytes] = {}
    async with anyio.create_task_group() as tg:
        port = await fake_h2_server.start(tg, script)
        async with Channel("127.0.0.1", port) as ch:
            # The first call makes sure the server's SETTINGS (with the limit) have arrived.
            assert await ch.unary("/t.S/M", b"first", timeout=10) == b"echo:first"

            async def one(index: int) -> None:
                results[index] = await ch.unary("/t.S/M", b"%d" % index, timeout=10)

            async with anyio.create_task_group() as calls:
                for index in range(12):
                    calls.start_soon(one, index)
        tg.cancel_scope.cancel()
    assert results == {i: b"echo:%d" % i for i in range(12)}
    assert script.most_open_streams <= 2


async def test_a_burst_before_the_servers_settings_stays_within_the_default_limit() -> None:
    # A server that limits streams (h2's and grpclib's default: 100) resets the connection when a
    # client opens more before the server's SETTINGS have said so; the client must wait for them.
    # This server says nothing at all until 100 streams are open: a client that does not stop at
    # 100 opens a 101st, which the server's h2 refuses as too many.
    script = fake_h2_server.Script(hold_settings_until_streams=100)
    results: dict[int, bytes] = {}
    async with anyio.create_task_group() as tg:
        port = await fake_h2_server.start(tg, script)
        async with Channel("127.0.0.1", port) as ch:

            async def one(index: int) -> None:
                results[index] = await ch.unary("/t.S/M", b"%d" % index, timeout=10)

            async with anyio.create_task_group() as calls:
                for index in range(250):
                    calls.start_soon(one, index)
        tg.cancel_scope.cancel()
    assert not script.too_many_streams
    assert results == {i: b"echo:%d" % i for i in range(250)}


async def test_reply_flagged_compressed_fails_that_call_only() -> None:
    script = fake_h2_server.Script(compress_request_named=b"zip")
    async with anyio.create_task_group() as tg:
        port = await fake_h2_server.start(tg, script)
        async with Channel("127.0.0.1", port) as ch:
            with pytest.raises(TransportError, match="compressed") as info:
                await ch.unary("/t.S/M", b"zip", timeout=10)
            assert await ch.unary("/t.S/M", b"plain", timeout=10) == b"echo:plain"
        tg.cancel_scope.cancel()
    assert f"127.0.0.1:{port}" in str(info.value)


async def test_settings_ack_and_large_frame_in_one_read() -> None:
    """The h2 trap from the design notes: the server's ACK of our 1 MiB MAX_FRAME_SIZE and a DATA frame
    above the 16 KiB default arrive in one read; h2 alone would reject the frame as too large."""
    script = fake_h2_server.Script(hold_output_until_reply=True)
    # Under the server's initial 64 KiB window (it holds back WINDOW_UPDATEs too), above 16 KiB frames:
    request = bytes(range(256)) * 200  # the echo comes back as one DATA frame of about 51 kB
    async with anyio.create_task_group() as tg:
        port = await fake_h2_server.start(tg, script)
        async with Channel("127.0.0.1", port, max_frame_size=1 << 20) as ch:
            assert await ch.unary("/t.S/M", request, timeout=10) == b"echo:" + request
        tg.cancel_scope.cancel()


async def test_ping_arriving_on_an_idle_connection_is_answered_and_the_connection_kept() -> None:
    script = fake_h2_server.Script()
    async with anyio.create_task_group() as tg:
        port = await fake_h2_server.start(tg, script)
        async with Channel("127.0.0.1", port) as ch:
            assert await ch.unary("/t.S/M", b"1", timeout=10) == b"echo:1"
            await script.ping_client()
            # The PING now waits in the idle connection's socket; the next call must catch up on it.
            assert await ch.unary("/t.S/M", b"2", timeout=10) == b"echo:2"
            with anyio.fail_after(10):
                while script.ping_acks < 1:
                    await script.changed.wait()
        tg.cancel_scope.cancel()
    assert script.connections == 1
