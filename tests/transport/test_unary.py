"""Unary calls against grpclib and grpcio servers: replies, statuses, metadata, large and concurrent calls."""

from __future__ import annotations

import json
import random

import anyio
import pytest
from grpc_test_servers import ServerThread, method

from pingthings.timeseries.transport import Channel, GrpcStatusError
from pingthings.timeseries.transport.metadata import USER_AGENT

pytestmark = pytest.mark.anyio


async def test_unary_echo(server: ServerThread) -> None:
    async with Channel("127.0.0.1", server.port) as ch:
        for request in (b"", b"x", random.Random(1).randbytes(1000)):
            assert await ch.unary(method("Unary"), request) == b"echo:" + request


@pytest.mark.parametrize(("code", "name"), [(16, "UNAUTHENTICATED"), (5, "NOT_FOUND"), (13, "INTERNAL")])
async def test_error_status_is_raised_with_name_message_and_endpoint(
    server: ServerThread, code: int, name: str
) -> None:
    async with Channel("127.0.0.1", server.port) as ch:
        with pytest.raises(GrpcStatusError) as info:
            await ch.unary(method("Unary"), f"status:{code}:bad key: é 100%".encode())
        assert await ch.unary(method("Unary"), b"after") == b"echo:after"
    error = info.value
    assert error.status == code
    assert error.message == "bad key: é 100%"
    assert error.endpoint == f"127.0.0.1:{server.port}"
    assert f"{name} ({code})" in str(error) and error.endpoint in str(error)


async def test_unknown_method_is_unimplemented(server: ServerThread) -> None:
    async with Channel("127.0.0.1", server.port) as ch:
        with pytest.raises(GrpcStatusError) as info:
            await ch.unary(f"/{method('Nope')[1:]}", b"")
    assert info.value.status == 12


async def test_metadata_user_agent_and_timeout_reach_the_server(server: ServerThread) -> None:
    channel_md = (("authorization", "Bearer secret-key"),)
    async with Channel("127.0.0.1", server.port, metadata=channel_md) as ch:
        seen = json.loads(await ch.unary(method("Headers"), b"", timeout=30, metadata=(("x-extra", "1"),)))
        plain = json.loads(await ch.unary(method("Headers"), b""))
    assert seen["metadata"]["authorization"] == "Bearer secret-key"
    assert seen["metadata"]["x-extra"] == "1"
    assert seen["metadata"]["user-agent"].startswith(USER_AGENT)
    assert 0 < seen["time_remaining"] <= 30
    assert "x-extra" not in plain["metadata"]
    assert plain["time_remaining"] is None or plain["time_remaining"] > 1e6


async def test_large_request_and_reply_cross_flow_control_windows(server: ServerThread) -> None:
    # 3 MiB (under grpcio's default 4 MiB message limit) is far above the server's initial 64 KiB window
    # and our frame size: both directions must wait for WINDOW_UPDATEs and split into frames.
    request = random.Random(2).randbytes(3 << 20)
    async with Channel("127.0.0.1", server.port) as ch:
        reply = await ch.unary(method("Unary"), request, timeout=60)
    assert reply == b"echo:" + request


async def test_many_concurrent_calls_share_one_connection(server: ServerThread) -> None:
    results: dict[int, bytes] = {}

    async def one(index: int) -> None:
        results[index] = await ch.unary(method("Unary"), str(index).encode() * (index % 7 + 1))

    async with Channel("127.0.0.1", server.port) as ch:
        async with anyio.create_task_group() as tg:
            for index in range(200):
                tg.start_soon(one, index)
        connection = ch._conn
        assert connection is not None and not connection.streams
    assert results == {i: b"echo:" + str(i).encode() * (i % 7 + 1) for i in range(200)}


async def test_bad_arguments_are_refused_before_any_io(server: ServerThread) -> None:
    async with Channel("127.0.0.1", server.port) as ch:
        with pytest.raises(ValueError, match="method path"):
            await ch.unary("Unary", b"")
        with pytest.raises(ValueError, match="timeout"):
            await ch.unary(method("Unary"), b"", timeout=0)
        with pytest.raises(ValueError, match="metadata key"):
            await ch.unary(method("Unary"), b"", metadata=(("Bad Key", "v"),))
    with pytest.raises(ValueError, match="port"):
        Channel("127.0.0.1", 0)
    with pytest.raises(ValueError, match="max_frame_size"):
        Channel("127.0.0.1", 1, max_frame_size=1 << 24)
