"""Aligned windows served in the event loop keep every guarantee of the worker-thread path.

Once a stream's tree is cached, a small aligned-windows query is answered without a worker thread
(:mod:`pingthings.server.service.stat_reads`). These tests drive both paths through our AsyncClient
(on asyncio and trio) and check what a reader must see: buffered inserts merged first
(read-your-writes), pinned versions, and hidden streams missing for a non-admin key.
"""

from __future__ import annotations

import uuid

import numpy as np
import pyarrow as pa
import pytest

import pingthings.timeseries as pt
from pingthings.server import Server
from pingthings.timeseries.exceptions import StreamNotFoundError
from tests.conftest import AuthServer

T0 = 1_700_000_000 * 10**9
PERIOD = 8_333_333  # 120 Hz
PW = 30
#: Whole 2^30 ns windows around every point written here.
START, END = T0 - (1 << 32), T0 + (1 << 36)


def second(i: int) -> tuple[np.ndarray, np.ndarray]:
    t = T0 + i * 10**9 + np.arange(120, dtype=np.int64) * PERIOD
    return t, np.round(np.sin(t / 1e9), 6)


def counts(table: pa.Table) -> int:
    return int(pa.compute.sum(table.column("count")).as_py())


@pytest.mark.anyio
async def test_reads_from_memory_see_every_acknowledged_insert_and_pinned_versions(
    server: Server, unique_collection: str
) -> None:
    engine = server.runtime.engine
    async with await pt.AsyncClient.connect(endpoint=server.endpoint) as client:
        stream = await client.create(uuid.uuid4(), unique_collection, {"name": "inline"})
        for i in range(10):
            await stream.insert(second(i))  # buffered on the server
        first = await stream.aligned_windows(START, END, PW)  # worker path: merges the buffer
        assert counts(first) == 1200
        assert engine.aligned_windows_in_memory(stream.uuid.bytes, START, END, PW) is not None
        again = await stream.aligned_windows(START, END, PW)  # now answered in the event loop
        assert again.equals(first)
        version = await stream.get_latest_version()
        await stream.insert(second(10))  # buffered again: the next read must merge it first
        assert engine.aligned_windows_in_memory(stream.uuid.bytes, START, END, PW) is None
        after = await stream.aligned_windows(START, END, PW)
        assert counts(after) == 1320
        assert await stream.get_latest_version() > version
        assert (await stream.aligned_windows(START, END, PW)).equals(after)  # from memory again
        pinned = await stream.aligned_windows(START, END, PW, version=version)
        assert pinned.equals(first)


@pytest.mark.anyio
async def test_a_hidden_streams_cached_windows_stay_hidden_from_a_non_admin_key(
    auth_server: AuthServer, unique_collection: str
) -> None:
    engine = auth_server.server.runtime.engine
    endpoint = auth_server.endpoint
    async with (
        await pt.AsyncClient.connect(endpoint=endpoint, apikey=auth_server.admin_key) as admin,
        await pt.AsyncClient.connect(endpoint=endpoint, apikey=auth_server.api_key) as user,
    ):
        stream = await admin.create(uuid.uuid4(), unique_collection, {"name": "secret", "hidden": "true"})
        await stream.insert(second(0))
        for _ in range(2):
            assert counts(await stream.aligned_windows(START, END, PW)) == 120
        assert engine.aligned_windows_in_memory(stream.uuid.bytes, START, END, PW) is not None
        with pytest.raises(StreamNotFoundError):
            await user.stream_handle(stream.uuid).aligned_windows(START, END, PW)


@pytest.mark.anyio
async def test_precise_windows_from_memory_see_buffered_inserts(
    server: Server, unique_collection: str
) -> None:
    engine = server.runtime.engine
    width = 700_000_000
    lo, hi = T0 - width, T0 + 20 * width
    async with await pt.AsyncClient.connect(endpoint=server.endpoint) as client:
        stream = await client.create(uuid.uuid4(), unique_collection, {"name": "precise"})
        for i in range(10):
            await stream.insert(second(i))
        first = await stream.precise_windows(lo, hi, width)
        assert first.num_rows == 21 and counts(first) == 1200
        assert engine.windows_in_memory(stream.uuid.bytes, lo, hi, width) is not None
        assert (await stream.precise_windows(lo, hi, width)).equals(first)  # from memory
        await stream.insert(second(10))
        after = await stream.precise_windows(lo, hi, width)
        assert counts(after) == 1320


@pytest.mark.anyio
async def test_latest_point_from_memory_sees_buffered_inserts(server: Server, unique_collection: str) -> None:
    engine = server.runtime.engine
    async with await pt.AsyncClient.connect(endpoint=server.endpoint) as client:
        stream = await client.create(uuid.uuid4(), unique_collection, {"name": "nearest"})
        assert await stream.latest() is None  # empty stream: no point
        await stream.insert(second(0))
        latest = await stream.latest()  # worker path: merges the buffer
        assert latest is not None and latest.time == int(second(0)[0][-1])
        earliest = await stream.earliest()
        assert earliest is not None and earliest.time == T0
        assert engine.nearest_in_memory(stream.uuid.bytes, T0, False) is not None
        assert await stream.earliest() == earliest  # from memory
        await stream.insert(second(1))
        after = await stream.latest()
        assert after is not None and after.time == int(second(1)[0][-1])
