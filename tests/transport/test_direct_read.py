"""The direct reader (trio, plain TCP): reads the socket itself, with anyio's receive's results, and
bounds a wait by a limit without a cancel scope (its watcher task wakes the read).

Real TCP connections on 127.0.0.1 (an anyio listener as the peer); nothing is mocked.
"""

from __future__ import annotations

import contextlib
from typing import Any

import anyio
import anyio.abc
import pytest
from socket_pair import pair

from pingthings.timeseries.transport.direct_read import direct_reader
from pingthings.timeseries.transport.errors import TransportError

pytestmark = pytest.mark.anyio


async def test_only_trio_streams_get_one(anyio_backend: str) -> None:
    async with pair() as (client, _):
        assert (direct_reader(client) is not None) == (anyio_backend == "trio")


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_a_receive_waits_for_data_and_survives_a_cancelled_wait(anyio_backend: str) -> None:
    async with pair() as (client, peer):
        reader = direct_reader(client)
        assert reader is not None
        receive = reader.receive
        with anyio.move_on_after(0.05) as scope:
            await receive(100)  # nothing was sent: the wait is cancelled at its deadline
        assert scope.cancelled_caught
        await peer.send(b"hello")
        with anyio.fail_after(10):
            assert await receive(100) == b"hello"


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_end_of_stream_after_the_data(anyio_backend: str) -> None:
    async with pair() as (client, peer):
        reader = direct_reader(client)
        assert reader is not None
        receive = reader.receive
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
        reader = direct_reader(client)
        assert reader is not None
        receive = reader.receive
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
        reader = direct_reader(client)
        assert reader is not None
        receive = reader.receive
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


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_a_limit_ends_a_wait_empty_and_the_socket_still_reads(anyio_backend: str) -> None:
    async with pair() as (client, peer):
        reader = direct_reader(client)
        assert reader is not None
        for _ in range(3):  # the watcher wakes each read at its own limit; the socket keeps working
            start = anyio.current_time()
            with anyio.fail_after(10):
                assert await reader.receive_until(100, start + 0.05) == b""
            assert anyio.current_time() - start >= 0.05
            await peer.send(b"after")
            with anyio.fail_after(10):
                assert await reader.receive_until(100, anyio.current_time() + 30) == b"after"


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_an_earlier_limit_wakes_the_sleeping_watcher(anyio_backend: str) -> None:
    async with pair() as (client, peer):
        reader = direct_reader(client)
        assert reader is not None
        await peer.send(b"x")
        assert await reader.receive_until(100, anyio.current_time() + 3600) == b"x"  # watcher: 1 h
        start = anyio.current_time()
        with anyio.fail_after(10):  # the watcher's sleep must be cut short for this limit
            assert await reader.receive_until(100, start + 0.05) == b""


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_a_limit_ends_a_read_while_a_write_waits_and_the_write_goes_on(anyio_backend: str) -> None:
    async with pair() as (client, peer):
        reader = direct_reader(client)
        assert reader is not None
        data = bytes(range(256)) * (64 << 12)  # 64 MiB: more than the socket buffers hold
        sent = anyio.Event()

        async def write() -> None:
            await reader.send(data)  # waits for room: the peer is not reading yet
            sent.set()

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(write)
                await anyio.wait_all_tasks_blocked()
                assert not sent.is_set()
                start = anyio.current_time()
                assert await reader.receive_until(100, start + 0.05) == b""  # on time, write waiting
                assert anyio.current_time() - start < 5
                assert not sent.is_set()
                got = 0
                while got < len(data):  # the write, woken with the read, waited again: all arrives
                    got += len(await peer.receive(1 << 20))
                await sent.wait()
        assert got == len(data)


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_closing_the_reader_wakes_a_bounded_read(anyio_backend: str) -> None:
    async with pair() as (client, _):
        reader = direct_reader(client)
        assert reader is not None
        ended: list[bytes] = []

        async def read() -> None:
            ended.append(await reader.receive_until(100, anyio.current_time() + 3600))

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(read)
                await anyio.wait_all_tasks_blocked()
                reader.close()  # the connection failed: no watcher any more, yet the read must end
        assert ended == [b""]


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_closing_ends_a_bounded_wait_with_an_error_and_later_limits_still_hold(
    anyio_backend: str,
) -> None:
    async with pair() as (client, _):
        reader = direct_reader(client)
        assert reader is not None
        reader.close()  # the connection failed: no watcher; a bounded read takes a scope
        start = anyio.current_time()
        with anyio.fail_after(10):
            assert await reader.receive_until(100, start + 0.05) == b""
        errors: list[BaseException] = []

        async def wait() -> None:
            try:
                await reader.receive_until(100, anyio.current_time() + 30)
            except BaseException as exc:
                errors.append(exc)

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(wait)
                await anyio.wait_all_tasks_blocked()
                await client.aclose()
        assert len(errors) == 1 and isinstance(errors[0], anyio.ClosedResourceError)


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_a_cancelled_receive_never_loses_bytes_it_read(anyio_backend: str) -> None:
    async with pair() as (client, peer):
        reader = direct_reader(client)
        assert reader is not None
        await peer.send(b"abc")
        await anyio.wait_all_tasks_blocked()
        got = b""
        with anyio.CancelScope() as scope:
            scope.cancel()  # strikes at the receive's first scheduling point
            got = await reader.receive(100)  # the bytes were there: read, then the shielded turn
        assert got == b"abc"


def _connection(stream: anyio.abc.ByteStream) -> Any:
    from pingthings.timeseries.transport.connection import Connection

    return Connection(
        stream,
        "127.0.0.1:1",
        max_frame_size=16_384,
        stream_window=65_535,
        connection_window=65_535,
        keepalive_interval=None,
        max_message_size=1 << 20,
    )


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_a_connection_read_keeps_its_deadline_while_a_write_is_stuck(
    anyio_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A server that stops reading: one task's write waits for room, another waits for a reply.
    # The reply's deadline must end that wait on time, and the write must fail only at its own
    # timeout; then nothing waits any more (the failure wakes every waiter, the reader included).
    from pingthings.timeseries.transport import connection as connection_module

    monkeypatch.setattr(connection_module, "WRITE_TIMEOUT", 1.0)
    async with pair() as (client, _):
        conn = _connection(client)
        start = anyio.current_time()
        ended: dict[str, float] = {}

        async def wait_for_reply(name: str, deadline: float) -> None:
            with contextlib.suppress(connection_module.WaitExpired, TransportError):
                await conn.wait_until(None, lambda: False, deadline=deadline)
            ended[name] = anyio.current_time() - start

        async def write() -> None:
            await conn._write(b"x" * (64 << 20))  # never read by the peer
            ended["write"] = anyio.current_time() - start

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                tg.start_soon(write)
                await anyio.wait_all_tasks_blocked()
                tg.start_soon(wait_for_reply, "short", start + 0.2)
                tg.start_soon(wait_for_reply, "long", start + 15)
        assert ended["short"] < 0.9  # not held back by the stuck write
        assert ended["write"] >= 0.9 and conn.failure is not None  # the write failed at its timeout
        assert ended["long"] < 10  # the failure ended the longer wait too
