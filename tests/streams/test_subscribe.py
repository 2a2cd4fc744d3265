"""Live subscriptions against the embedded server: inserts while subscribed, cancellation,
a restarted server, a consumer that falls behind (asyncio and trio; both faces)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import anyio
import numpy as np
import pyarrow as pa
import pytest

from pingthings.server import Server
from pingthings.timeseries.async_client import AsyncClient
from pingthings.timeseries.async_streamset import AsyncStreamSet
from pingthings.timeseries.client import Client
from pingthings.timeseries.exceptions import ConnectionError, SubscriptionLagError
from pingthings.timeseries.live import LiveBatch, Subscription

from .helpers import T0, new_stream, table_columns

pytestmark = pytest.mark.anyio


async def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until ``condition()`` holds (polling; fails the test after ``timeout`` s)."""
    with anyio.fail_after(timeout):
        while not condition():
            await anyio.sleep(0.005)


def batch(first: int, n: int, base: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    times = T0 + np.arange(first, first + n, dtype=np.int64) * 1_000_000
    return times, base + np.arange(n, dtype=np.float64)


def joined(batches: list[pa.Table]) -> tuple[np.ndarray, np.ndarray]:
    cols = [table_columns(t) for t in batches]
    return np.concatenate([c[0] for c in cols]), np.concatenate([c[1] for c in cols])


async def test_inserts_during_a_subscription_arrive_in_order(
    client: AsyncClient, server: Server, unique_collection: str
) -> None:
    a = await new_stream(client, unique_collection)
    b = await new_stream(client, unique_collection)
    hub = server.runtime.hub
    assert hub is not None
    sent = [(a, batch(0, 5)), (b, batch(0, 3, 100.0)), (a, batch(5, 4, 10.0))]
    async with AsyncStreamSet([a, b]).subscribe() as live:
        await wait_for(
            lambda: hub.subscriber_count(a.uuid.bytes) == 1 and hub.subscriber_count(b.uuid.bytes) == 1
        )
        for stream, points in sent:
            await stream.insert(points)
        for stream, (times, values) in sent:
            got = await live.__anext__()
            assert isinstance(got, LiveBatch) and got.uuid == stream.uuid
            t, v = table_columns(got.table)
            np.testing.assert_array_equal(t, times)
            np.testing.assert_array_equal(v, values)
    await wait_for(lambda: hub.subscriber_count(a.uuid.bytes) == 0)

    async with a.subscribe() as tables:  # one stream: plain tables
        await wait_for(lambda: hub.subscriber_count(a.uuid.bytes) == 1)
        await a.insert(batch(20, 2))
        table = await tables.__anext__()
        assert table.column_names == ["time", "value"] and table.num_rows == 2


async def test_stop_and_cancellation_end_the_call(
    client: AsyncClient, server: Server, unique_collection: str
) -> None:
    stream = await new_stream(client, unique_collection)
    hub = server.runtime.hub
    assert hub is not None
    received: list[pa.Table] = []
    live = stream.subscribe()

    async def consume() -> None:
        async for table in live:
            received.append(table)

    async with anyio.create_task_group() as tg:
        tg.start_soon(consume)
        await wait_for(lambda: hub.subscriber_count(stream.uuid.bytes) == 1)
        await stream.insert(batch(0, 3))
        await wait_for(lambda: len(received) == 1)
        live.stop()  # the consumer's loop ends; the task group then exits
    await wait_for(lambda: hub.subscriber_count(stream.uuid.bytes) == 0)

    with anyio.move_on_after(0.2):  # cancelling a waiting consumer closes the call too
        async with stream.subscribe() as again:
            await wait_for(lambda: hub.subscriber_count(stream.uuid.bytes) == 1)
            await again.__anext__()
    await wait_for(lambda: hub.subscriber_count(stream.uuid.bytes) == 0)


def _serve(data: Path, listen: str) -> tuple[subprocess.Popen[str], str]:
    """Run ``pingthings serve`` as a real process; return it and the endpoint it printed."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "pingthings.cli.main", "serve", "--data", str(data), "--listen", listen],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        match = re.search(r"listening on (127\.0\.0\.1:\d+)", line)
        if match:
            return proc, match.group(1)
    proc.kill()
    raise AssertionError(f"serve printed no endpoint: {''.join(seen)!r}")


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.timeout(180)
async def test_resumes_after_a_server_restart_without_loss_or_repeats(tmp_path: Path) -> None:
    data = tmp_path / "data"
    procs = []
    proc, endpoint = await anyio.to_thread.run_sync(_serve, data, "127.0.0.1:0")
    procs.append(proc)
    try:
        client = await AsyncClient.connect(endpoint=endpoint)
        writer = await AsyncClient.connect(endpoint=endpoint)
        try:
            stream = await new_stream(writer, "pt_tests/restart")
            probe = await new_stream(writer, "pt_tests/restart")
            await stream.insert(batch(0, 10))  # before the subscription: never delivered
            received: list[pa.Table] = []
            probes: list[pa.Table] = []
            live = AsyncStreamSet(
                [await client.stream_from_uuid(stream.uuid), await client.stream_from_uuid(probe.uuid)]
            ).subscribe(reconnect_timeout=60)
            sent = [batch(10, 5), batch(15, 7), batch(22, 3)]

            async def consume() -> None:
                async for uuid_, table in live:
                    (received if uuid_ == stream.uuid else probes).append(table)

            async def until_probed() -> None:
                """The subscription is live once a probe insert comes back (the server gives no ack)."""
                count = len(probes)
                k = 0
                while len(probes) == count:
                    await probe.insert(batch(1000 * len(probes) + k, 1))
                    k += 1
                    await anyio.sleep(0.05)

            async with live, anyio.create_task_group() as tg:
                tg.start_soon(consume)
                with anyio.fail_after(30):
                    await until_probed()
                await stream.insert(sent[0])
                await wait_for(lambda: sum(t.num_rows for t in received) == 5)

                await anyio.to_thread.run_sync(_stop, proc)
                proc, _ = await anyio.to_thread.run_sync(_serve, data, endpoint)
                procs.append(proc)
                await stream.insert(sent[1])  # while the subscriber may still be away
                with anyio.fail_after(60):
                    await until_probed()
                # Pushed by the new server. sent[1] came with the read after the watermark, unless
                # it landed while the subscription was resuming (after that read, before the new
                # server had the subscription): then it fills the gap before this batch (live.py).
                await stream.insert(sent[2])
                await wait_for(lambda: sum(t.num_rows for t in received) == 15)
                live.stop()
            times, values = joined(received)
            np.testing.assert_array_equal(times, np.concatenate([t for t, _ in sent]))
            np.testing.assert_array_equal(values, np.concatenate([v for _, v in sent]))
            assert live.reconnects == 1
        finally:
            await writer.aclose()
            await client.aclose()
    finally:
        for p in procs:
            await anyio.to_thread.run_sync(_stop, p)


async def test_gives_up_when_the_server_stays_away(tmp_path: Path) -> None:
    srv = Server(tmp_path / "data", listen="127.0.0.1:0")
    await anyio.to_thread.run_sync(srv.start)
    try:
        client = await AsyncClient.connect(endpoint=srv.endpoint)
        try:
            stream = await new_stream(client, "pt_tests/away")
            async with stream.subscribe(reconnect_timeout=0.3) as live:
                hub = srv.runtime.hub
                assert hub is not None
                await wait_for(lambda: hub.subscriber_count(stream.uuid.bytes) == 1)
                await anyio.to_thread.run_sync(srv.stop)
                with pytest.raises(ConnectionError, match=r"could not be re-established within 0\.3 s"):
                    await live.__anext__()
        finally:
            await client.aclose()
    finally:
        await anyio.to_thread.run_sync(srv.stop)


async def test_stop_interrupts_reconnecting(tmp_path: Path) -> None:
    srv = Server(tmp_path / "data", listen="127.0.0.1:0")
    await anyio.to_thread.run_sync(srv.start)
    try:
        client = await AsyncClient.connect(endpoint=srv.endpoint)
        try:
            stream = await new_stream(client, "pt_tests/stop_reconnect")
            live = stream.subscribe(reconnect_timeout=600)
            ended = anyio.Event()

            async def consume() -> None:
                async for _ in live:
                    pass
                ended.set()

            async with anyio.create_task_group() as tg:
                await live.subscription.open()
                hub = srv.runtime.hub
                assert hub is not None
                await wait_for(lambda: hub.subscriber_count(stream.uuid.bytes) == 1)
                tg.start_soon(consume)
                await anyio.to_thread.run_sync(srv.stop)  # the consumer starts reconnecting
                await anyio.sleep(0.3)
                live.stop()
                with anyio.fail_after(10):
                    await ended.wait()
            assert live.subscription.reconnects == 0
        finally:
            await client.aclose()
    finally:
        await anyio.to_thread.run_sync(srv.stop)


async def test_a_consumer_that_falls_behind_is_told(tmp_path: Path) -> None:
    srv = Server(tmp_path / "data", listen="127.0.0.1:0")
    await anyio.to_thread.run_sync(srv.start)
    try:
        hub = srv.runtime.hub
        assert hub is not None
        hub._buffer = 2  # a tiny per-subscriber buffer, so falling behind is quick to provoke
        reader = await AsyncClient.connect(endpoint=srv.endpoint)
        writer = await AsyncClient.connect(endpoint=srv.endpoint)
        try:
            stream = await new_stream(writer, "pt_tests/lag")
            async with (await reader.stream_from_uuid(stream.uuid)).subscribe() as live:
                await wait_for(lambda: hub.subscriber_count(stream.uuid.bytes) == 1)
                n = 0
                while hub.subscriber_count(stream.uuid.bytes):  # nobody reads meanwhile
                    await stream.insert(batch(n * 20_000, 20_000))
                    n += 1
                    assert n < 2000, "the server never gave up on the stalled subscriber"
                delivered = 0
                with pytest.raises(SubscriptionLagError, match="fell behind"):
                    async for table in live:
                        delivered += table.num_rows
                assert delivered < n * 20_000  # some batches came, then the error, never silence
        finally:
            await writer.aclose()
            await reader.aclose()
    finally:
        await anyio.to_thread.run_sync(srv.stop)


async def test_bad_arguments_are_named(client: AsyncClient, unique_collection: str) -> None:
    stream = await new_stream(client, unique_collection)
    with pytest.raises(ValueError, match="reconnect_timeout"):
        stream.subscribe(reconnect_timeout=-1)
    with pytest.raises(TypeError, match="reconnect_timeout"):
        stream.subscribe(reconnect_timeout="5")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one stream"):
        Subscription([])


def test_sync_iterator(conn: Client, server: Server, unique_collection: str) -> None:
    stream = conn.create(uuid.uuid4(), unique_collection, {"name": "live"})
    sset = conn.streamset_from_uuids([stream.uuid])
    hub = server.runtime.hub
    assert hub is not None
    seen: list[LiveBatch] = []
    ready = threading.Event()

    def consume() -> None:
        for item in sset.subscribe():
            seen.append(item)
            if len(seen) == 2:
                break  # leaving the loop ends the subscription

    worker = threading.Thread(target=consume)
    worker.start()
    for _ in range(2000):
        if hub.subscriber_count(stream.uuid.bytes) == 1:
            ready.set()
            break
        threading.Event().wait(0.005)
    assert ready.is_set()
    stream.insert(batch(0, 2))
    stream.insert(batch(2, 2))
    worker.join(10)
    assert not worker.is_alive()
    assert [b.uuid for b in seen] == [stream.uuid, stream.uuid]
    assert [b.table.num_rows for b in seen] == [2, 2]
    for _ in range(2000):
        if hub.subscriber_count(stream.uuid.bytes) == 0:
            break
        threading.Event().wait(0.005)
    assert hub.subscriber_count(stream.uuid.bytes) == 0
    tables = stream.subscribe()
    assert hasattr(tables, "__next__")
    tables.close()  # type: ignore[attr-defined]
