"""StreamSet aligned windows in one MultiAlignedWindows call: the same results as stream by stream.

The per-stream path is made unusable (``AsyncStream.aligned_windows`` raises) while the set is
asked, so a pass proves the one-call path answered; the reference is then each stream's own
AlignedWindows call. Both data paths (Arrow and protobuf) and both event loops.
"""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
import pytest

from pingthings.timeseries import _multi_windows
from pingthings.timeseries.async_client import AsyncClient
from pingthings.timeseries.async_stream import AsyncStream
from pingthings.timeseries.async_streamset import AsyncStreamSet
from pingthings.timeseries.client import Client
from pingthings.timeseries.constants import STAT_F64_SCHEMA
from pingthings.timeseries.exceptions import StreamNotFoundError

from .helpers import T0, new_stream, random_points

pytestmark = pytest.mark.anyio


def _no_per_stream_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    async def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the per-stream path was used")

    monkeypatch.setattr(AsyncStream, "aligned_windows", refuse)


async def test_same_tables_versions_and_order_as_per_stream_calls(
    client: AsyncClient, unique_collection: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    streams = [await new_stream(client, unique_collection) for _ in range(5)]
    for i, s in enumerate(streams[:4]):
        await s.insert(random_points(3_000, seed=i))
    first_version = await streams[1].get_latest_version()
    await streams[1].insert(random_points(500, seed=9, start=T0 + 3 * 10**9))
    sset = AsyncStreamSet(streams)
    versions = [0, first_version, 0, 0, 0]  # streams[4] has no data: an empty table
    start, end, pw = T0 - 10**9, T0 + 10**10, 28
    pairs = list(zip(streams, versions, strict=True))
    want = {
        schema: [await s.aligned_windows(start, end, pw, v, schema) for s, v in pairs]
        for schema in (None, STAT_F64_SCHEMA)
    }
    want_f32 = [await s.aligned_windows(start, end, pw, v) for s, v in pairs]
    _no_per_stream_calls(monkeypatch)
    for schema, tables in want.items():
        got = await sset.aligned_windows(start, end, pw, versions, single_stream_schema=schema)
        assert [t.schema for t in got] == [t.schema for t in tables]
        assert all(g.equals(w) for g, w in zip(got, tables, strict=True))
    got = await sset.aligned_windows(start, end, pw, versions)
    assert all(g.equals(w) for g, w in zip(got, want_f32, strict=True))
    assert got[4].num_rows == 0 and got[0].num_rows > 0
    assert int(np.sum(got[1].column("count").to_numpy())) == 3_000  # the pinned version


async def test_reads_its_own_buffered_writes(
    client: AsyncClient, unique_collection: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    streams = [await new_stream(client, unique_collection) for _ in range(3)]
    sset = AsyncStreamSet(streams)
    data = {s.uuid: random_points(200, seed=20 + i) for i, s in enumerate(streams)}
    await sset.insert(data)
    _no_per_stream_calls(monkeypatch)
    got = await sset.aligned_windows(T0 - 2**41, T0 + 2**41, 40)
    assert [int(np.sum(t.column("count").to_numpy())) for t in got] == [200, 200, 200]


async def test_a_failing_stream_raises_its_own_labelled_error(
    client: AsyncClient, unique_collection: str
) -> None:
    good = await new_stream(client, unique_collection)
    await good.insert(random_points(100))
    gone = await new_stream(client, unique_collection)
    await gone.obliterate()
    sset = AsyncStreamSet([good, gone])
    with pytest.raises(StreamNotFoundError) as one_call:
        await sset.aligned_windows(T0, T0 + 10**10, 30)
    _multi_windows._unsupported.add(client)  # the per-stream path, for the reference
    with pytest.raises(StreamNotFoundError) as per_stream:
        await sset.aligned_windows(T0, T0 + 10**10, 30)
    assert str(gone.uuid) in str(one_call.value)
    assert str(one_call.value) == str(per_stream.value)
    assert one_call.value.code == per_stream.value.code


async def test_hidden_streams_are_missing_for_a_plain_key(auth_server: Any, unique_collection: str) -> None:
    endpoint = auth_server.endpoint
    async with (
        await AsyncClient.connect(endpoint=endpoint, apikey=auth_server.api_key) as user,
        await AsyncClient.connect(endpoint=endpoint, apikey=auth_server.admin_key) as admin,
    ):
        hidden = await new_stream(admin, unique_collection, hidden="true")
        await hidden.insert(random_points(50))
        assert (await AsyncStreamSet([hidden]).aligned_windows(T0, T0 + 10**10, 30))[0].num_rows
        seen_by_user = AsyncStream(user, hidden.uuid)
        missing = AsyncStream(user, uuid.uuid4())
        messages = []
        for stream in (seen_by_user, missing):
            with pytest.raises(StreamNotFoundError) as err:
                await AsyncStreamSet([stream]).aligned_windows(T0, T0 + 10**10, 30)
            messages.append(str(err.value).replace(str(stream.uuid), "<uuid>"))
        assert messages[0] == messages[1]


async def test_more_streams_than_one_call_takes(
    client: AsyncClient, unique_collection: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_multi_windows, "MAX_STREAMS_PER_CALL", 2)
    streams = [await new_stream(client, unique_collection) for _ in range(5)]
    for i, s in enumerate(streams):
        await s.insert(random_points(100 + i, seed=i))
    want = [await s.aligned_windows(T0, T0 + 10**10, 30) for s in streams]
    _no_per_stream_calls(monkeypatch)
    got = await AsyncStreamSet(streams).aligned_windows(T0, T0 + 10**10, 30)
    assert all(g.equals(w) for g, w in zip(got, want, strict=True))


def test_the_sync_streamset_uses_it_too(conn: Client, unique_collection: str) -> None:
    streams = [conn.create(uuid.uuid4(), unique_collection, tags={"name": f"s{i}"}) for i in range(3)]
    for i, s in enumerate(streams):
        s.insert(random_points(300, seed=i))
    want = [s.aligned_windows(T0, T0 + 10**10, 29) for s in streams]
    with pytest.MonkeyPatch.context() as mp:
        _no_per_stream_calls(mp)
        got = conn.streamset_from_uuids([s.uuid for s in streams]).aligned_windows(T0, T0 + 10**10, 29)
    assert all(g.equals(w) for g, w in zip(got, want, strict=True))


async def test_a_stream_split_over_several_replies_is_joined_back(
    client: AsyncClient, unique_collection: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    streams = [await new_stream(client, unique_collection) for _ in range(2)]
    await streams[0].insert(random_points(12_000, seed=3))
    await streams[1].insert(random_points(50, seed=4))
    start, end = T0 - 2**20, T0 + 2**35
    want = [await s.aligned_windows(start, end, 19) for s in streams]
    assert want[0].num_rows > 2 * 5000
    _no_per_stream_calls(monkeypatch)
    got = await AsyncStreamSet(streams).aligned_windows(start, end, 19)
    assert all(g.equals(w) for g, w in zip(got, want, strict=True))


async def test_a_server_taking_fewer_streams_per_request_is_asked_stream_by_stream(tmp_path: Any) -> None:
    from pingthings.server import Server

    with Server(tmp_path, listen="127.0.0.1:0", max_streams_per_request=2) as srv:
        async with await AsyncClient.connect(endpoint=srv.endpoint) as c:
            streams = [await new_stream(c, "narrow") for _ in range(3)]
            for i, s in enumerate(streams):
                await s.insert(random_points(100, seed=i))
            want = [await s.aligned_windows(T0, T0 + 10**10, 30) for s in streams]
            got = await AsyncStreamSet(streams).aligned_windows(T0, T0 + 10**10, 30)
            assert all(g.equals(w) for g, w in zip(got, want, strict=True))
            assert _multi_windows.offered(c)  # refused for its size, not unsupported
            assert await AsyncStreamSet(streams[:2]).aligned_windows(T0, T0 + 10**10, 30)
