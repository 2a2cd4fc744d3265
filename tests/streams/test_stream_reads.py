"""AsyncStream reads against the embedded server, on asyncio and trio, Arrow and protobuf paths."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from pingthings.timeseries.async_client import AsyncClient
from pingthings.timeseries.async_stream import Point
from pingthings.timeseries.constants import (
    MAXIMUM_TIME,
    MINIMUM_TIME,
    PW,
    RAW_VALUES_SCHEMA,
    STAT_F32_SCHEMA,
    STAT_F64_SCHEMA,
)
from pingthings.timeseries.exceptions import InvalidTimeRange

from .helpers import (
    T0,
    aligned_oracle,
    assert_stats_equal,
    new_stream,
    precise_oracle,
    random_points,
    sorted_points,
    stat_columns,
    table_columns,
)

pytestmark = pytest.mark.anyio


async def test_raw_values_round_trip(client: AsyncClient, unique_collection: str) -> None:
    stream = await new_stream(client, unique_collection)
    times, values = random_points(3000, seed=1)
    await stream.insert((times, values))
    st, sv = sorted_points(times, values)

    table = await stream.raw_values(MINIMUM_TIME, MAXIMUM_TIME)
    assert table.schema.equals(RAW_VALUES_SCHEMA)
    got_t, got_v = table_columns(table)
    np.testing.assert_array_equal(got_t, st)
    np.testing.assert_array_equal(got_v, sv)

    lo, hi = int(st[500]), int(st[2100])  # [lo, hi): hi itself excluded
    got_t, got_v = table_columns(await stream.raw_values(lo, hi))
    mask = (st >= lo) & (st < hi)
    np.testing.assert_array_equal(got_t, st[mask])
    np.testing.assert_array_equal(got_v, sv[mask])
    assert got_t[-1] < hi


async def test_raw_values_iter_streams_chunks(client: AsyncClient, unique_collection: str) -> None:
    stream = await new_stream(client, unique_collection)
    n = 120_001  # above one server message (protobuf: 5000 points, Arrow: 100 000 rows)
    times, values = random_points(n, seed=2)
    before = await stream.get_latest_version()
    version = await stream.insert((times, values))
    assert version == await stream.get_latest_version()
    assert version >= before + 3, "120 001 points go in three batches of at most 50 000"
    chunks = [t async for t in stream.raw_values_iter(MINIMUM_TIME, MAXIMUM_TIME)]
    assert len(chunks) >= 2
    got_t, got_v = table_columns(pa.concat_tables(chunks))
    st, sv = sorted_points(times, values)
    np.testing.assert_array_equal(got_t, st)
    np.testing.assert_array_equal(got_v, sv)

    # leaving early cancels the call; the client keeps working
    async for first in stream.raw_values_iter(MINIMUM_TIME, MAXIMUM_TIME):
        assert first.num_rows > 0
        break
    assert await stream.count() == n


async def test_empty_stream(client: AsyncClient, unique_collection: str) -> None:
    stream = await new_stream(client, unique_collection)
    raw = await stream.raw_values(MINIMUM_TIME, MAXIMUM_TIME)
    assert raw.num_rows == 0 and raw.schema.equals(RAW_VALUES_SCHEMA)
    aw = await stream.aligned_windows(MINIMUM_TIME, MAXIMUM_TIME, 50)
    assert aw.num_rows == 0 and aw.schema.equals(STAT_F32_SCHEMA)
    assert [t async for t in stream.raw_values_iter(T0, T0 + 10**9)] == []
    assert await stream.earliest() is None
    assert await stream.latest() is None
    assert await stream.nearest(T0) is None
    assert await stream.count() == 0
    assert await stream.count(precise=True) == 0


@pytest.mark.parametrize(
    ("start", "end"),
    [(T0 + 10, T0), (T0, T0), (MINIMUM_TIME - 1, T0), (T0, MAXIMUM_TIME + 1)],
    ids=["reversed", "empty", "before-min", "after-max"],
)
async def test_out_of_range_times_raise_invalid_time_range(
    client: AsyncClient, unique_collection: str, start: int, end: int
) -> None:
    stream = await new_stream(client, unique_collection)
    await stream.insert([(T0 + 1, 1.0)])
    with pytest.raises(InvalidTimeRange):
        await stream.raw_values(start, end)
    if start < end:
        with pytest.raises(InvalidTimeRange):
            await stream.delete(start, end)
    if start < MINIMUM_TIME:  # (windows truncate `end` first, so a too-late end may become valid)
        with pytest.raises(InvalidTimeRange):
            await stream.precise_windows(start, end, 1 << 40)


async def test_time_arguments_accept_datetime_numpy_and_pandas(
    client: AsyncClient, unique_collection: str
) -> None:
    stream = await new_stream(client, unique_collection)
    times, values = random_points(500, seed=3, spacing=10_000_000)
    await stream.insert((times, values))
    start_ns, end_ns = T0 + 1_000_000_000, T0 + 3_000_000_000  # whole seconds after T0
    expected = await stream.raw_values(start_ns, end_ns)
    assert expected.num_rows > 0
    start_naive = dt.datetime(2020, 1, 1, 0, 0, 1)
    end_aware = dt.datetime(2020, 1, 1, 0, 0, 3, tzinfo=dt.UTC)
    forms = [
        (start_naive, end_aware),
        (np.datetime64(start_ns, "ns"), np.datetime64("2020-01-01T00:00:03", "s")),
        (pd.Timestamp(start_ns, tz="UTC"), pd.Timestamp("2020-01-01 00:00:03")),
    ]
    for start, end in forms:
        assert (await stream.raw_values(start, end)).equals(expected), (start, end)


async def test_aligned_windows_match_numpy(client: AsyncClient, unique_collection: str) -> None:
    stream = await new_stream(client, unique_collection)
    times, values = random_points(5000, seed=4)
    await stream.insert((times, values))
    pw = 24
    start, end = T0 - 3 * (1 << pw) + 12345, int(times.max()) - (1 << pw)
    table = await stream.aligned_windows(start, end, pw, schema=STAT_F64_SCHEMA)
    assert table.schema.equals(STAT_F64_SCHEMA)
    want = aligned_oracle(times, values, start, end, pw)
    assert want["time"].size > 3
    assert_stats_equal(stat_columns(table), want)

    # default: the float32 schema of the pt docs, values equal to the float64 ones rounded
    table32 = await stream.aligned_windows(start, end, pw)
    assert table32.schema.equals(STAT_F32_SCHEMA)
    got32 = stat_columns(table32)
    np.testing.assert_array_equal(got32["mean"], want["mean"].astype(np.float32))
    np.testing.assert_array_equal(got32["count"], want["count"])

    # schema=None: whatever the server sent (float64)
    assert (await stream.aligned_windows(start, end, pw, schema=None)).schema.equals(STAT_F64_SCHEMA)

    chunks = [t async for t in stream.aligned_windows_iter(start, end, pw, schema=STAT_F64_SCHEMA)]
    assert pa.concat_tables(chunks).equals(table)


async def test_aligned_windows_rejects_bad_point_width(client: AsyncClient, unique_collection: str) -> None:
    stream = await new_stream(client, unique_collection)
    with pytest.raises(ValueError, match="point_width"):
        await stream.aligned_windows(T0, T0 + 100, 64)
    with pytest.raises(TypeError, match="point_width"):
        await stream.aligned_windows(T0, T0 + 100, 2.5)  # type: ignore[arg-type]


async def test_precise_windows_match_numpy(client: AsyncClient, unique_collection: str) -> None:
    stream = await new_stream(client, unique_collection)
    times, values = random_points(4000, seed=5)
    # a gap, so some windows are empty
    keep = (times < T0 + 1_000_000_000) | (times > T0 + 1_400_000_000)
    times, values = times[keep], values[keep]
    await stream.insert((times, values))
    width = 37_000_001
    start, end = T0 - 5_000_000, int(times.max()) + 3
    table = await stream.precise_windows(start, end, width, schema=STAT_F64_SCHEMA)
    want = precise_oracle(times, values, start, end, width)
    assert (want["count"] == 0).any() and (want["count"] > 0).any()
    assert_stats_equal(stat_columns(table), want)

    chunks = [t async for t in stream.precise_windows_iter(start, end, width, schema=STAT_F64_SCHEMA)]
    assert pa.concat_tables(chunks).equals(table)


async def test_windowed_values_picks_aligned_or_precise(client: AsyncClient, unique_collection: str) -> None:
    stream = await new_stream(client, unique_collection)
    times, values = random_points(2000, seed=6)
    await stream.insert((times, values))
    start, end = T0 + 3, int(times.max())
    aligned = await stream.windowed_values(start, end, 1 << 22)
    assert aligned.num_rows > 1 and aligned.equals(await stream.aligned_windows(start, end, 22))
    assert (await stream.windowed_values(start, end, PW[22])).equals(aligned)  # a point width, not 22 ns
    precise = await stream.windowed_values(start, end, 3_000_000)
    assert precise.equals(await stream.precise_windows(start, end, 3_000_000))


async def test_count_fast_and_precise(client: AsyncClient, unique_collection: str) -> None:
    stream = await new_stream(client, unique_collection)
    times, values = random_points(3000, seed=7)
    await stream.insert((times, values))
    assert await stream.count() == times.size
    assert await stream.count(precise=True) == times.size
    lo, hi = int(np.sort(times)[700]), int(np.sort(times)[2500]) + 1
    assert await stream.count(lo, hi, precise=True) == int(((times >= lo) & (times < hi)).sum())
    pw = 30  # an aligned range: the fast count is exact there
    alo, ahi = (T0 >> pw) << pw, ((int(times.max()) >> pw) + 1) << pw
    assert await stream.count(alo, ahi) == int(((times >= alo) & (times < ahi)).sum())


async def test_nearest_earliest_latest(client: AsyncClient, unique_collection: str) -> None:
    stream = await new_stream(client, unique_collection)
    times, values = random_points(1000, seed=8)
    await stream.insert((times, values))
    st, sv = sorted_points(times, values)
    assert await stream.earliest() == Point(int(st[0]), float(sv[0]))
    assert await stream.latest() == Point(int(st[-1]), float(sv[-1]))
    probe = int(st[400])
    assert await stream.nearest(probe) == Point(probe, float(sv[400]))  # forward is inclusive
    assert await stream.nearest(probe, backward=True) == Point(int(st[399]), float(sv[399]))  # exclusive
    assert await stream.nearest(int(st[-1]) + 1) is None
    assert await stream.nearest(int(st[0]), backward=True) is None
    point = await stream.earliest()
    assert point is not None and isinstance(point.time, int) and isinstance(point.value, float)
