"""The client's whole data path against a stand-in of a stock BTrDB 4.15 server (:mod:`btrdb_double`).

Each test reproduces one thing issue 11 saw against the real server: gzip-compressed replies, the
25,000-point insert limit, raw-bytes annotations, the v4 ListCollections, no platform service.
Expected values are computed here with numpy from the inserted arrays.
"""

from __future__ import annotations

import uuid as uuidlib

import numpy as np
import pytest

from pingthings.timeseries import AsyncClient
from pingthings.timeseries.exceptions import NotImplementedByServerError, PingThingsError
from tests.realservers.btrdb_double import RunningDouble

pytestmark = pytest.mark.anyio

T0 = 1_700_000_000_000_000_000
STEP = 1_000_000  # 1 ms


def _points(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return T0 + np.arange(n, dtype=np.int64) * STEP, rng.normal(size=n)


async def test_connect_reads_the_gzip_compressed_info(v4_server: RunningDouble) -> None:
    async with await AsyncClient.connect(endpoint=v4_server.endpoint) as client:
        info = await client.info()
    assert (info["major_version"], info["minor_version"], info["build"]) == (4, 15, "4.15.9")


async def test_the_whole_data_path(v4_server: RunningDouble) -> None:
    times, values = _points(60_000)
    async with await AsyncClient.connect(endpoint=v4_server.endpoint) as client:
        stream = await client.create(uuidlib.uuid4(), "grid/pmu1", {"name": "L1MAG", "unit": "volts"})
        version = await stream.insert((times, values))
        assert version > 10
        assert all(r.code == 0 and r.points <= 25_000 for r in v4_server.inserts())
        table = await stream.raw_values(T0, T0 + 60_000 * STEP)
        np.testing.assert_array_equal(table.column("time").cast("int64").to_numpy(), times)
        np.testing.assert_array_equal(table.column("value").to_numpy(), values)
        # 2**30 ns windows (about 1.07 s) fully inside the range
        pw = 30
        stats = await stream.aligned_windows(T0, T0 + 60_000 * STEP, pw, schema=None)
        starts = stats.column("time").cast("int64").to_numpy()
        assert starts.size > 0
        for start, count, mean in zip(
            starts, stats.column("count").to_numpy(), stats.column("mean").to_numpy(), strict=True
        ):
            inside = (times >= start) & (times < start + (1 << pw))
            assert count == inside.sum()
            assert mean == pytest.approx(values[inside].mean())
        windows = await stream.windowed_values(T0, T0 + 60_000 * STEP, 10_000 * STEP)
        assert windows.column("count").to_numpy().tolist() == [10_000] * 6
        nearest = await stream.nearest(T0 + 5 * STEP + 1)
        assert nearest is not None and nearest.time == int(times[6])
        latest = await stream.latest()
        assert latest is not None and latest.time == int(times[-1])
        found = await client.streams_in_collection("grid/")
        assert [s.uuid for s in found] == [stream.uuid]
        await stream.delete(T0, T0 + 30_000 * STEP)
        assert (await stream.raw_values(T0, T0 + 60_000 * STEP)).num_rows == 30_000
        await stream.flush()
        await stream.obliterate()
        assert not await stream.exists()


async def test_inserts_above_the_v4_limit_are_batched_to_25000(v4_server: RunningDouble) -> None:
    times, values = _points(120_000, seed=1)
    async with await AsyncClient.connect(endpoint=v4_server.endpoint) as client:
        stream = await client.create(uuidlib.uuid4(), "grid/pmu2", {"name": "L2MAG"})
        await stream.insert((times, values))
        table = await stream.raw_values(T0, T0 + 120_000 * STEP)
    assert table.num_rows == 120_000
    sizes = [r.points for r in v4_server.inserts()]
    assert max(sizes) == 25_000 and sum(sizes) == 120_000
    assert all(r.code == 0 for r in v4_server.inserts())


async def test_raw_bytes_annotations_read_back_as_their_text(v4_server: RunningDouble) -> None:
    async with await AsyncClient.connect(endpoint=v4_server.endpoint) as client:
        stream = await client.create(uuidlib.uuid4(), "grid/pmu3", {"name": "L3MAG"}, {"phase": "A"})
        assert stream.annotations() == {"phase": "A"}
        await stream.update(annotations={"phase": "A2"})
        assert stream.annotations() == {"phase": "A2"}
        again = await client.streams_in_collection("grid/pmu3")
        assert again[0].annotations() == {"phase": "A2"}


async def test_list_collections_pages_through_the_v4_call(v4_server: RunningDouble) -> None:
    async with await AsyncClient.connect(endpoint=v4_server.endpoint) as client:
        for name in ("sub/a", "sub/b", "other/c"):
            await client.create(uuidlib.uuid4(), name, {"name": "x"})
        assert await client.list_collections("sub/") == ["sub/a", "sub/b"]
        assert await client.list_collections() == ["other/c", "sub/a", "sub/b"]


async def test_platform_calls_name_the_missing_capability(v4_server: RunningDouble) -> None:
    async with await AsyncClient.connect(endpoint=v4_server.endpoint) as client:
        with pytest.raises(NotImplementedByServerError, match="devices") as info:
            await client.list_devices()
        stream = await client.create(uuidlib.uuid4(), "grid/pmu4", {"name": "x"})
        with pytest.raises(NotImplementedByServerError, match="retention"):
            await stream.get_retention()
        with pytest.raises(NotImplementedByServerError, match="version_at_time"):
            await stream.get_version_at_time(T0)
        with pytest.raises(NotImplementedByServerError, match="units"):
            await client.list_units()
    assert "pingthings.platform.v1.Platform" in str(info.value)
    assert isinstance(info.value, PingThingsError)
