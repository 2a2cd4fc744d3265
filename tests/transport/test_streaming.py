"""Server-streaming and bidirectional calls: contents, big messages, statuses after messages, bidi echo."""

from __future__ import annotations

import anyio
import pytest
from grpc_test_servers import ServerThread, method, stream_message, stream_request

from pingthings.timeseries.transport import Channel, GrpcStatusError

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("count", "size"),
    [(0, 10), (1, 0), (300, 100_000), (3, (2 << 20) + 7)],
    ids=["empty", "zero-length", "many-100kB", "bigger-than-frames"],
)
async def test_server_stream_delivers_every_message_intact(
    server: ServerThread, count: int, size: int
) -> None:
    received = []
    request = stream_request(count, size)
    async with (
        Channel("127.0.0.1", server.port) as ch,
        ch.server_stream(method("Stream"), request, timeout=60) as messages,
    ):
        async for message in messages:
            received.append(bytes(message))
    assert received == [stream_message(i, size) for i in range(count)]


@pytest.mark.parametrize("frame_size", [16_384, 1 << 20])
async def test_frame_size_setting_is_honoured(server: ServerThread, frame_size: int) -> None:
    async with (
        Channel("127.0.0.1", server.port, max_frame_size=frame_size) as ch,
        ch.server_stream(method("Stream"), stream_request(20, 300_000)) as messages,
    ):
        got = [bytes(m) async for m in messages]
    assert got == [stream_message(i, 300_000) for i in range(20)]


async def test_status_after_messages_is_raised_after_them(server: ServerThread) -> None:
    received = []
    async with Channel("127.0.0.1", server.port) as ch:
        with pytest.raises(GrpcStatusError) as info:
            request = stream_request(5, 1000, then="fail", status=9, message="stale version")
            async with ch.server_stream(method("Stream"), request) as messages:
                async for message in messages:
                    received.append(bytes(message))
        assert await ch.unary(method("Unary"), b"ok") == b"echo:ok"
    assert received == [stream_message(i, 1000) for i in range(5)]
    assert info.value.status == 9 and info.value.message == "stale version"
    assert "FAILED_PRECONDITION (9)" in str(info.value)


async def test_bidi_echo_with_half_close(server: ServerThread) -> None:
    sent = [b"one", b"", b"x" * 200_000, b"four"]
    async with Channel("127.0.0.1", server.port) as ch:
        async with ch.bidi(method("Bidi"), timeout=30) as call:
            replies = []
            for message in sent:
                await call.send(message)
                replies.append(bytes(await call.__anext__()))
            await call.end_send()
            replies.extend([bytes(m) async for m in call])
        with pytest.raises(RuntimeError, match="end_send"):
            await call.send(b"late")
    assert replies == [b"re:" + m for m in sent] + [f"done:{len(sent)}".encode()]


async def test_bidi_sender_and_receiver_in_separate_tasks(server: ServerThread) -> None:
    count = 500
    async with Channel("127.0.0.1", server.port) as ch, ch.bidi(method("Bidi")) as call:

        async def sender() -> None:
            for index in range(count):
                await call.send(str(index).encode())
            await call.end_send()

        async with anyio.create_task_group() as tg:
            tg.start_soon(sender)
            replies = [bytes(m) async for m in call]
    assert replies == [b"re:" + str(i).encode() for i in range(count)] + [f"done:{count}".encode()]


async def test_iterating_outside_the_async_with_block_is_an_error(server: ServerThread) -> None:
    async with Channel("127.0.0.1", server.port) as ch:
        call = ch.server_stream(method("Stream"), stream_request(2, 10))
        with pytest.raises(RuntimeError, match="async with"):
            await call.__anext__()
        async with call as messages:
            assert [bytes(m) async for m in messages] == [stream_message(i, 10) for i in range(2)]
        with pytest.raises(StopAsyncIteration):
            await call.__anext__()
        bidi = ch.bidi(method("Bidi"))
        with pytest.raises(RuntimeError, match="async with"):
            await bidi.send(b"x")


async def test_bidi_sends_from_many_tasks_never_interleave(server: ServerThread) -> None:
    # Messages of 1.5 MB are written in several bursts (and wait for WINDOW_UPDATEs part-way), so
    # unserialised senders would interleave their frames.
    messages = [bytes([index]) * 1_500_000 for index in range(8)]
    async with Channel("127.0.0.1", server.port) as ch, ch.bidi(method("Bidi"), timeout=60) as call:
        replies: list[bytes] = []

        async def receive_all() -> None:
            replies.extend([bytes(m) async for m in call])

        async with anyio.create_task_group() as tg:
            tg.start_soon(receive_all)
            async with anyio.create_task_group() as senders:
                for message in messages:
                    senders.start_soon(call.send, message)
            await call.end_send()
    assert replies[-1] == f"done:{len(messages)}".encode()
    assert sorted(replies[:-1]) == sorted(b"re:" + m for m in messages)
