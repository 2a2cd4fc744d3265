"""Multi-stream results as one table, pandas / polars DataFrames and numpy arrays (both faces)."""

from __future__ import annotations

import uuid

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from pingthings.timeseries import frames
from pingthings.timeseries.async_client import AsyncClient
from pingthings.timeseries.async_streamset import AsyncStreamSet
from pingthings.timeseries.client import Client

from .helpers import T0, new_stream, random_points, sorted_points

pytestmark = pytest.mark.anyio


async def _three_streams(
    client: AsyncClient, collection: str
) -> tuple[AsyncStreamSet, dict[uuid.UUID, tuple[np.ndarray, np.ndarray]]]:
    streams = [await new_stream(client, collection, name=f"Sig{i}", unit="Volts") for i in range(3)]
    data = {s.uuid: sorted_points(*random_points(300, seed=7 + i)) for i, s in enumerate(streams)}
    sset = AsyncStreamSet(streams)
    await sset.insert(data)
    return sset, data


def _wide_oracle(
    uuids: list[uuid.UUID], data: dict[uuid.UUID, tuple[np.ndarray, np.ndarray]]
) -> tuple[np.ndarray, np.ndarray]:
    times = np.unique(np.concatenate([data[u][0] for u in uuids]))
    values = np.full((times.size, len(uuids)), np.nan)
    for j, u in enumerate(uuids):
        t, v = data[u]
        values[np.searchsorted(times, t), j] = v
    return times, values


async def test_wide_pandas_polars_numpy_match_the_points(client: AsyncClient, unique_collection: str) -> None:
    sset, data = await _three_streams(client, unique_collection)
    end = T0 + 10**12
    want_t, want_v = _wide_oracle(sset.uuids, data)

    frame = await sset.to_pandas(T0, end)
    assert list(frame.columns) == [str(u) for u in sset.uuids]
    assert str(frame.index.dtype) == "datetime64[ns, UTC]"
    np.testing.assert_array_equal(frame.index.asi8, want_t)
    np.testing.assert_array_equal(frame.to_numpy(), want_v)

    times, values = await sset.to_numpy(T0, end)
    np.testing.assert_array_equal(times, want_t)
    np.testing.assert_array_equal(values, want_v)

    polars_frame = await sset.to_polars(T0, end, labels="name")
    assert polars_frame.columns == ["time"] + [f"{unique_collection}/Sig{i}" for i in range(3)]
    np.testing.assert_array_equal(polars_frame["time"].dt.epoch("ns").to_numpy(), want_t)
    np.testing.assert_array_equal(polars_frame.drop("time").to_numpy(), want_v)


async def test_long_form_has_one_row_per_point(client: AsyncClient, unique_collection: str) -> None:
    sset, data = await _three_streams(client, unique_collection)
    frame = await sset.to_pandas(T0, T0 + 10**12, form="long")
    assert list(frame.columns) == ["time", "stream", "value"]
    assert len(frame) == sum(len(t) for t, _ in data.values())
    for u in sset.uuids:
        rows = frame[frame["stream"] == str(u)]
        np.testing.assert_array_equal(rows["time"].astype("int64").to_numpy(), data[u][0])
        np.testing.assert_array_equal(rows["value"].to_numpy(), data[u][1])
    long_polars = await sset.to_polars(T0, T0 + 10**12, form="long")
    assert long_polars.height == len(frame) and long_polars.columns == ["time", "stream", "value"]


async def test_windowed_statistics_wide_and_long(client: AsyncClient, unique_collection: str) -> None:
    sset, data = await _three_streams(client, unique_collection)
    width = 1 << 26
    end = T0 + (1 << 30)
    table = await sset.to_arrow(T0, end, width=width)
    per_stream = await sset.windowed_values(T0, end, width, single_stream_schema=None)
    first = str(sset.uuids[0])
    assert table.column_names[:6] == ["time"] + [f"{first}/{s}" for s in frames.STAT_COLUMNS]
    all_times = np.unique(np.concatenate([t.column("time").cast(pa.int64()).to_numpy() for t in per_stream]))
    np.testing.assert_array_equal(table.column("time").cast(pa.int64()).to_numpy(), all_times)
    for u, own in zip(sset.uuids, per_stream, strict=True):
        slots = np.searchsorted(all_times, own.column("time").cast(pa.int64()).to_numpy())
        np.testing.assert_array_equal(
            table.column(f"{u}/mean").to_numpy()[slots], own.column("mean").to_numpy()
        )
        counts = table.column(f"{u}/count").to_numpy()
        assert counts.sum() == np.count_nonzero((data[u][0] >= T0) & (data[u][0] < end))
    long = await sset.to_arrow(T0, end, width=width, form="long")
    assert long.num_rows == sum(t.num_rows for t in per_stream)
    assert long.column_names == ["time", "stream", *frames.STAT_COLUMNS]


async def test_filter_range_is_used_and_names_match_ignoring_case(
    client: AsyncClient, unique_collection: str
) -> None:
    sset, data = await _three_streams(client, unique_collection)
    u0 = sset.uuids[0]
    times0 = data[u0][0]
    lo, hi = int(times0[10]), int(times0[20])
    narrowed = await sset.filter(name="sig0", unit="VOLTS", start=lo, end=hi)
    assert narrowed.uuids == [u0] and narrowed.time_range == (lo, hi)
    frame = await narrowed.to_dataframe()
    np.testing.assert_array_equal(frame.index.asi8, times0[10:20])
    earliest, latest = await narrowed.earliest(), await narrowed.latest()
    assert earliest[u0] is not None and earliest[u0].time == lo
    assert latest[u0] is not None and latest[u0].time == int(times0[19])
    with pytest.raises(ValueError, match="now is outside"):
        await narrowed.current()
    assert (await sset.current())[u0] == (await sset[0].latest())  # all test data is in the past
    with pytest.raises(ValueError, match="start and end"):
        await sset.to_arrow()
    with pytest.raises(ValueError, match="before end"):
        await sset.filter(start=hi, end=lo)
    with pytest.raises(ValueError, match="form must be"):
        await sset.to_arrow(T0, hi, form="tall")
    with pytest.raises(ValueError, match="labels must be"):
        await sset.to_arrow(T0, hi, labels="title")


def test_sync_face_returns_the_same_frames(conn: Client, unique_collection: str) -> None:
    streams = [
        conn.create(uuid.uuid4(), unique_collection, {"name": f"p{i}", "unit": "hz"}) for i in range(2)
    ]
    sset = conn.streamset_from_uuids([s.uuid for s in streams])
    data = {s.uuid: sorted_points(*random_points(100, seed=i)) for i, s in enumerate(streams)}
    sset.insert(data)
    want_t, want_v = _wide_oracle(sset.uuids, data)
    frame = sset.filter(start=T0, end=T0 + 10**12).to_pandas()
    assert isinstance(frame, pd.DataFrame)
    np.testing.assert_array_equal(frame.to_numpy(), want_v)
    times, values = sset.to_numpy(T0, T0 + 10**12)
    np.testing.assert_array_equal(times, want_t)
    np.testing.assert_array_equal(values, want_v)
    assert isinstance(sset.to_polars(T0, T0 + 10**12, form="long"), pl.DataFrame)
    assert sset.to_arrow(T0, T0 + 10**12).num_rows == len(want_t)
    assert sset.stream_labels("name") == [f"{unique_collection}/p0", f"{unique_collection}/p1"]
    assert set(sset.current()) == set(sset.uuids)
    assert streams[0].current() == streams[0].latest()


def test_frames_helpers_do_not_copy_value_columns() -> None:
    values = pa.array(np.arange(1000, dtype=np.float64))
    times = pa.array(np.arange(1000, dtype=np.int64)).cast(frames.TIME_TYPE)
    table = pa.table({"time": times, "a": values})
    frame = frames.to_pandas(frames.rename_wide(table, ["x"]))
    address = values.buffers()[1].address
    assert frame["x"].to_numpy().__array_interface__["data"][0] == address
    polars_frame = frames.to_polars(table)
    assert polars_frame["a"].to_numpy().__array_interface__["data"][0] == address
    with pytest.raises(ValueError, match="labels"):
        frames.rename_wide(table, ["x", "y"])
