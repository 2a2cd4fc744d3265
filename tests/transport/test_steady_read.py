"""The steady reader (asyncio, plain TCP): reading stays on, receives join the queue, which is bounded.

Real TCP connections on 127.0.0.1 (an anyio listener as the peer); nothing is mocked.
"""

from __future__ import annotations

import anyio
import pytest
from socket_pair import pair

from pingthings.timeseries.transport.steady_read import SteadyReader, steady_reader

pytestmark = pytest.mark.anyio


async def _until(condition: object) -> None:
    """Let the event loop run until ``condition()`` holds (bounded)."""
    with anyio.fail_after(10):
        while not condition():  # type: ignore[operator]
            await anyio.sleep(0)


async def test_trio_streams_get_none(anyio_backend: str) -> None:
    async with pair() as (client, _):
        reader = steady_reader(client, None)
        assert (reader is None) == (anyio_backend == "trio")


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_pieces_are_joined_up_to_the_size_asked_in_order(anyio_backend: str) -> None:
    async with pair() as (client, peer):
        chunks: list[int] = []
        reader = steady_reader(client, chunks.append)
        assert isinstance(reader, SteadyReader)
        sent = b"".join(bytes([i]) * 1000 for i in range(10))
        for i in range(10):
            await peer.send(sent[i * 1000 : (i + 1) * 1000])
        await _until(lambda: sum(chunks) == len(sent))
        assert reader.pending()
        got = await reader.receive(2500)  # three pieces, the last one cut
        assert got == sent[:2500]
        rest = await reader.receive(1 << 20)
        assert got + rest == sent
        assert not reader.pending()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_receive_waits_for_data_and_survives_a_cancelled_wait(anyio_backend: str) -> None:
    async with pair() as (client, peer):
        reader = steady_reader(client, None)
        assert reader is not None
        with anyio.move_on_after(0.05) as scope:
            await reader.receive(100)
        assert scope.cancelled_caught
        async with anyio.create_task_group() as tg:
            tg.start_soon(peer.send, b"late")
            with anyio.fail_after(10):
                assert await reader.receive(100) == b"late"


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_the_queue_is_bounded_while_nobody_receives(anyio_backend: str) -> None:
    limit = 256 << 10
    async with pair() as (client, peer):
        transport, protocol = client._transport, client._protocol  # type: ignore[attr-defined]
        queued: list[int] = []
        reader = SteadyReader(client, transport, protocol, queued.append, limit=limit)
        total = 8 << 20
        block = b"x" * (64 << 10)
        sent = 0

        async def flood() -> None:
            nonlocal sent
            while sent < total:
                await peer.send(block)
                sent += len(block)

        async with anyio.create_task_group() as tg:
            tg.start_soon(flood)
            await _until(lambda: sum(queued) >= limit)
            for _ in range(200):  # the peer keeps sending; the client must stop reading
                await anyio.sleep(0)
            held = sum(queued)
            assert held < limit + transport.max_size
            assert sent < total  # TCP holds the sender back
            received = 0
            with anyio.fail_after(30):
                while received < total:
                    received += len(await reader.receive(1 << 20))
        assert received == total


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_end_of_stream_after_the_data(anyio_backend: str) -> None:
    async with pair() as (client, peer):
        reader = steady_reader(client, None)
        assert reader is not None
        await peer.send(b"last words")
        await peer.aclose()
        with anyio.fail_after(10):
            data = b""
            while len(data) < 10:
                data += await reader.receive(100)
            assert data == b"last words"
            with pytest.raises(anyio.EndOfStream):
                await reader.receive(100)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_nudge_returns_a_waiting_receive_empty_but_never_loses_data(anyio_backend: str) -> None:
    async with pair() as (client, peer):
        reader = steady_reader(client, None)
        assert reader is not None
        async with anyio.create_task_group() as tg:
            results: list[bytes] = []

            async def wait_once() -> None:
                results.append(await reader.receive(100))

            tg.start_soon(wait_once)
            await anyio.wait_all_tasks_blocked()
            reader.nudge()
        assert results == [b""]
        await peer.send(b"data")
        await _until(reader.pending)
        reader.nudge()  # data is queued: the nudge must not hide it
        with anyio.fail_after(10):
            assert await reader.receive(100) == b"data"
            async with anyio.create_task_group() as tg:
                tg.start_soon(peer.send, b"more")
                assert await reader.receive(100) == b"more"  # the nudge was used up
