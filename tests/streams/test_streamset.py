"""AsyncStreamSet against the embedded server (asyncio and trio, Arrow and protobuf paths)."""

from __future__ import annotations

import re
import sys
import uuid

import numpy as np
import pyarrow as pa
import pytest

from pingthings.timeseries.async_client import AsyncClient
from pingthings.timeseries.async_stream import AsyncStream, Point
from pingthings.timeseries.async_streamset import AsyncStreamSet
from pingthings.timeseries.constants import MAXIMUM_TIME, MINIMUM_TIME, STAT_F64_SCHEMA
from pingthings.timeseries.exceptions import StreamNotFoundError

from .helpers import T0, assert_tables_equal, new_stream, random_points, sorted_points, table_columns

pytestmark = pytest.mark.anyio


async def _filled_set(
    client: AsyncClient, collection: str, n_streams: int = 3, n_points: int = 400
) -> tuple[AsyncStreamSet, dict[uuid.UUID, tuple[np.ndarray, np.ndarray]]]:
    streams = [
        await new_stream(client, collection, name=f"sig{i}", unit="volts" if i % 2 == 0 else "amps")
        for i in range(n_streams)
    ]
    sset = AsyncStreamSet(streams)
    data = {s.uuid: random_points(n_points, seed=100 + i) for i, s in enumerate(streams)}
    versions = await sset.insert(data)
    assert set(versions) == set(data)
    return sset, data


async def test_container_behaviour(client: AsyncClient, unique_collection: str) -> None:
    a = await new_stream(client, unique_collection)
    b = await new_stream(client, unique_collection)
    sset = AsyncStreamSet([a, b, a])
    assert len(sset) == 2 and list(sset) == [a, b] and sset.uuids == [a.uuid, b.uuid]
    assert sset[1] is b and sset[-1] is b
    assert sset[a.uuid] is a and sset[str(b.uuid)] is b
    assert a in sset and str(b.uuid) in sset and uuid.uuid4() not in sset
    with pytest.raises(KeyError, match="not in this set"):
        sset[uuid.uuid4()]
    with pytest.raises(ValueError, match="not a UUID"):
        sset["nope"]
    with pytest.raises(TypeError, match="AsyncStream"):
        AsyncStreamSet([a, "b"])  # type: ignore[list-item]
    from_client = await client.streamset_from_uuids([a.uuid, str(b.uuid)])
    assert from_client.uuids == [a.uuid, b.uuid]
    assert from_client[0].name == a.name


async def test_filter(client: AsyncClient, unique_collection: str) -> None:
    sset, _ = await _filled_set(client, unique_collection, n_streams=4, n_points=1)
    await sset[1].update(annotations={"site": "north-7"})
    assert [s.name for s in await sset.filter(unit="volts")] == ["sig0", "sig2"]
    assert [s.name for s in await sset.filter(name="sig3")] == ["sig3"]
    assert [s.name for s in await sset.filter(name="sig")] == []  # str = exact match
    assert [s.name for s in await sset.filter(name=re.compile(r"[13]$"))] == ["sig1", "sig3"]
    assert len(await sset.filter(collection=unique_collection)) == 4
    assert len(await sset.filter(collection=re.compile("^pt_tests/"))) == 4
    assert [s.name for s in await sset.filter(tags={"unit": "amps", "name": re.compile("1")})] == ["sig1"]
    assert [s.name for s in await sset.filter(annotations={"site": re.compile("north")})] == ["sig1"]
    assert [s.name for s in await sset.filter(annotations={"site": None})] == ["sig1"]
    # streams without loaded metadata are fetched first
    bare = AsyncStreamSet([await client.stream_from_uuid(s.uuid) for s in sset])
    assert [s.name for s in await bare.filter(unit="amps")] == ["sig1", "sig3"]
    with pytest.raises(TypeError, match="unit"):
        await sset.filter(unit=3)  # type: ignore[arg-type]


async def test_raw_values_per_stream_and_insert_mapping(client: AsyncClient, unique_collection: str) -> None:
    sset, data = await _filled_set(client, unique_collection)
    tables = await sset.raw_values(MINIMUM_TIME, MAXIMUM_TIME)
    assert len(tables) == len(sset)
    for stream, table in zip(sset, tables, strict=True):
        st, sv = sorted_points(*data[stream.uuid])
        got_t, got_v = table_columns(table)
        np.testing.assert_array_equal(got_t, st)
        np.testing.assert_array_equal(got_v, sv)
    with pytest.raises(KeyError, match="not in this set"):
        await sset.insert({uuid.uuid4(): [(T0, 1.0)]})
    # stream objects work as keys too
    first = sset[0]
    await sset.insert({first: [(T0 - 1, 5.0)]})
    assert (await sset.count())[first.uuid] == len(data[first.uuid][0]) + 1
    with pytest.raises(ValueError, match="merge"):
        await sset.insert({sset[0].uuid: [(T0, 1.0)]}, merge="sometimes")


async def test_raw_values_aligned_matches_numpy(client: AsyncClient, unique_collection: str) -> None:
    streams = [await new_stream(client, unique_collection) for _ in range(3)]
    sset = AsyncStreamSet(streams)
    grid = T0 + np.arange(40, dtype=np.int64) * 1000
    per_stream = {
        streams[0].uuid: (grid[::2], np.arange(20, dtype=float)),
        streams[1].uuid: (grid[1::3], np.arange(13, dtype=float) + 100),
        streams[2].uuid: (grid[5:7], np.array([-1.0, -2.0])),
    }
    await sset.insert(per_stream)
    start, end = int(grid[0]), int(grid[-1])  # the last grid time is excluded
    table = await sset.raw_values_aligned(start, end)
    assert table.column_names == ["time"] + [str(s.uuid) for s in streams]
    times = table.column("time").combine_chunks().view(pa.int64()).to_numpy()
    want_times = np.unique(np.concatenate([t for t, _ in per_stream.values()]))
    want_times = want_times[want_times < end]
    np.testing.assert_array_equal(times, want_times)
    for s in streams:
        t, v = per_stream[s.uuid]
        col = np.full(want_times.size, np.nan)
        sel = t < end
        col[np.searchsorted(want_times, t[sel])] = v[sel]
        np.testing.assert_array_equal(table.column(str(s.uuid)).to_numpy(), col)


async def test_raw_values_aligned_snapping(client: AsyncClient, unique_collection: str) -> None:
    a = await new_stream(client, unique_collection)
    b = await new_stream(client, unique_collection)
    sset = AsyncStreamSet([a, b])
    second = 1_000_000_000
    base = (T0 // second) * second
    await a.insert([(base + 400_000_000, 1.0), (base + second + 500_000_000, 2.0)])  # -> base, base+2s
    await b.insert([(base + second - 1, 3.0), (base + 2 * second + 700_000_000, 4.0)])  # -> base+1s, +3s
    table = await sset.raw_values_aligned(base, base + 3 * second, sampling_frequency=1.0)
    times = table.column("time").combine_chunks().view(pa.int64()).to_numpy()
    np.testing.assert_array_equal(times, base + np.array([0, 1, 2]) * second)  # base+3s is past the end
    np.testing.assert_array_equal(table.column(str(a.uuid)).to_numpy(), [1.0, np.nan, 2.0])
    np.testing.assert_array_equal(table.column(str(b.uuid)).to_numpy(), [np.nan, 3.0, np.nan])
    with pytest.raises(ValueError, match="sampling_frequency"):
        await sset.raw_values_aligned(base, base + second, sampling_frequency=0)


async def test_arrow_and_protobuf_paths_agree(server_endpoint: str, unique_collection: str) -> None:
    arrow = await AsyncClient.connect(endpoint=server_endpoint)
    proto = await AsyncClient.connect(endpoint=server_endpoint)
    proto._arrow_enabled = False
    try:
        sset, _ = await _filled_set(arrow, unique_collection, n_streams=2, n_points=3000)
        same = AsyncStreamSet([await proto.stream_from_uuid(u) for u in sset.uuids])
        start, end = T0, T0 + 10**10
        for x, y in zip(await sset.raw_values(start, end), await same.raw_values(start, end), strict=True):
            assert x.equals(y)
        aligned = await sset.raw_values_aligned(start, end)
        assert np.isnan(aligned.column(1).to_numpy()).any(), "the join should leave holes"
        assert_tables_equal(aligned, await same.raw_values_aligned(start, end))
        snapped = await sset.raw_values_aligned(start, end, 1000.0)
        assert_tables_equal(snapped, await same.raw_values_aligned(start, end, 1000.0))
        for method, width in (("aligned_windows", 21), ("precise_windows", 1_234_567)):
            got = await getattr(sset, method)(start, end, width, single_stream_schema=STAT_F64_SCHEMA)
            want = await getattr(same, method)(start, end, width, single_stream_schema=STAT_F64_SCHEMA)
            for x, y in zip(got, want, strict=True):
                assert x.equals(y), method
    finally:
        await arrow.aclose()
        await proto.aclose()


async def test_windows_for_many_streams(client: AsyncClient, unique_collection: str) -> None:
    sset, _ = await _filled_set(client, unique_collection)
    start, end = T0, T0 + 10**10
    aligned = await sset.aligned_windows(start, end, 22)
    precise = await sset.precise_windows(start, end, 3_000_001)
    by_pow2 = await sset.windowed_values(start, end, 1 << 22)
    by_other = await sset.windowed_values(start, end, 3_000_001)
    for i, stream in enumerate(sset):
        assert aligned[i].equals(await stream.aligned_windows(start, end, 22))
        assert precise[i].equals(await stream.precise_windows(start, end, 3_000_001))
        assert by_pow2[i].equals(aligned[i]) and by_other[i].equals(precise[i])


async def test_pin_versions(client: AsyncClient, unique_collection: str) -> None:
    sset, data = await _filled_set(client, unique_collection, n_streams=2, n_points=100)
    await sset.pin_versions()
    pinned = sset.pinned_versions
    assert pinned == await sset.get_latest_version()
    extra = {u: ([(T0 - 1, 7.0)]) for u in sset.uuids}
    after = await sset.insert(extra)
    assert all(after[u] > pinned[u] for u in sset.uuids)
    assert await sset.count() == {u: 100 for u in sset.uuids}  # reads use the pinned versions
    assert await sset.count(versions=[0, 0]) == {u: 101 for u in sset.uuids}
    earliest = await sset.earliest()
    for u in sset.uuids:
        st, sv = sorted_points(*data[u])
        assert earliest[u] == Point(int(st[0]), float(sv[0]))
    first = sset.uuids[0]
    await sset.pin_versions({first: after[first]})
    assert (await sset.earliest())[first] == Point(T0 - 1, 7.0)
    assert (await sset.latest(versions={first: pinned[first]}))[first] is not None
    narrowed = await sset.filter(name="sig1")
    assert narrowed.pinned_versions == {sset.uuids[1]: pinned[sset.uuids[1]]}
    with pytest.raises(KeyError, match="not in this set"):
        await sset.pin_versions({uuid.uuid4(): 3})
    with pytest.raises(ValueError, match="entries"):
        await sset.count(versions=[0])


async def test_counts_points_changes_and_versions(client: AsyncClient, unique_collection: str) -> None:
    sset, data = await _filled_set(client, unique_collection)
    empty = await new_stream(client, unique_collection)
    both = AsyncStreamSet([*sset, empty])
    counts = await both.count()
    assert counts == {**{u: len(data[u][0]) for u in sset.uuids}, empty.uuid: 0}
    assert await both.count(precise=True) == counts
    latest = await both.latest()
    assert latest[empty.uuid] is None
    for u in sset.uuids:
        st, sv = sorted_points(*data[u])
        assert latest[u] == Point(int(st[-1]), float(sv[-1]))
    versions = await both.get_latest_version()
    assert versions[empty.uuid] == await empty.get_latest_version()
    changes = await both.changes({u: 0 for u in both.uuids})
    for u in sset.uuids:
        for t in data[u][0][:20].tolist():
            assert any(r["start"] <= t < r["end"] for r in changes[u])
    import time

    now = time.time_ns()
    assert await both.get_version_at_time(now) == versions
    await both.flush()
    await both.refresh_metadata()
    assert [s.collection for s in both] == [unique_collection] * 4


async def test_first_failure_names_the_stream(client: AsyncClient, unique_collection: str) -> None:
    good = await new_stream(client, unique_collection)
    missing = AsyncStream(client, uuid.uuid4())
    sset = AsyncStreamSet([good, missing])
    with pytest.raises(StreamNotFoundError, match=str(missing.uuid)):
        await sset.raw_values(T0, T0 + 10)
    with pytest.raises(StreamNotFoundError, match=str(missing.uuid)):
        await sset.get_latest_version()


async def test_progress_bar_only_when_asked_and_only_on_a_terminal(
    client: AsyncClient, unique_collection: str, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sset, _ = await _filled_set(client, unique_collection, n_streams=2, n_points=10)
    await sset.count()
    assert capsys.readouterr().err == ""
    await sset.count(progress=True)
    assert capsys.readouterr().err == ""  # stderr is not a terminal: no bar, no '\r' fragments
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    await sset.count(progress=True)
    assert "count" in capsys.readouterr().err
