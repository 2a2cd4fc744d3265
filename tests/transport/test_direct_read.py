"""The direct reader (trio, plain TCP): reads the socket itself, with anyio's receive's results.

Real TCP connections on 127.0.0.1 (an anyio listener as the peer); nothing is mocked.
"""

from __future__ import annotations

import anyio
import pytest
from socket_pair import pair

from pingthings.timeseries.transport.direct_read import direct_reader

pytestmark = pytest.mark.anyio


async def test_only_trio_streams_get_one(anyio_backend: str) -> None:
    async with pair() as (client, _):
        assert (direct_reader(client) is not None) == (anyio_backend == "trio")


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_a_receive_waits_for_data_and_survives_a_cancelled_wait(anyio_backend: str) -> None:
    async with pair() as (client, peer):
        receive = direct_reader(client)
        assert receive is not None
        with anyio.move_on_after(0.05) as scope:
            await receive(100)  # nothing was sent: the wait is cancelled at its deadline
        assert scope.cancelled_caught
        await peer.send(b"hello")
        with anyio.fail_after(10):
            assert await receive(100) == b"hello"


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_end_of_stream_after_the_data(anyio_backend: str) -> None:
    async with pair() as (client, peer):
        receive = direct_reader(client)
        assert receive is not None
        await peer.send(b"last words")
        await peer.aclose()
        with anyio.fail_after(10):
            data = b""
            while len(data) < 10:
                data += await receive(100)
            assert data == b"last words"
            with pytest.raises(anyio.EndOfStream):
                await receive(100)


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_closing_the_stream_ends_a_waiting_receive_as_anyio_would(anyio_backend: str) -> None:
    async with pair() as (client, _):
        receive = direct_reader(client)
        assert receive is not None
        errors: list[BaseException] = []

        async def wait() -> None:
            try:
                await receive(100)
            except BaseException as exc:
                errors.append(exc)

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(wait)
                await anyio.wait_all_tasks_blocked()  # the receive is blocked in its wait
                await client.aclose()
        assert len(errors) == 1 and isinstance(errors[0], anyio.ClosedResourceError)


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_data_that_is_always_ready_still_lets_other_tasks_run(anyio_backend: str) -> None:
    async with pair() as (client, peer):
        receive = direct_reader(client)
        assert receive is not None
        total = 1 << 20
        await peer.send(b"x" * total)  # over loopback, in the client's socket buffer once sent
        turns = 0
        reading = True

        async def count_turns() -> None:
            nonlocal turns
            while reading:
                turns += 1
                await anyio.sleep(0)

        got = 0
        async with anyio.create_task_group() as tg:
            tg.start_soon(count_turns)
            with anyio.fail_after(10):
                while got < total:
                    got += len(await receive(4096))  # each receive takes one small piece
            reading = False
        assert got == total
        assert turns > 10  # without a checkpoint per ready receive, the counter would not run at all
