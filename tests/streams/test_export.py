"""StreamSet.to_csv / to_parquet: sliced reads with bounded size, files equal to one big read."""

from __future__ import annotations

import csv
import itertools
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from pingthings.timeseries import export
from pingthings.timeseries.async_client import AsyncClient
from pingthings.timeseries.async_streamset import AsyncStreamSet
from pingthings.timeseries.client import Client

from .helpers import T0, new_stream, random_points

pytestmark = pytest.mark.anyio

END = T0 + 10**13


async def _streams(client: AsyncClient, collection: str) -> AsyncStreamSet:
    streams = [await new_stream(client, collection, name=f"e{i}") for i in range(3)]
    sset = AsyncStreamSet(streams)
    data = {s.uuid: random_points(400, seed=40 + i) for i, s in enumerate(streams)}
    # a dense burst: 300 points within 300 ns, so the planner must split a fine window
    burst = (T0 + 5 * 10**9 + np.arange(300, dtype=np.int64), np.arange(300, dtype=np.float64))
    data[streams[0].uuid] = (
        np.concatenate([data[streams[0].uuid][0], burst[0]]),
        np.concatenate([data[streams[0].uuid][1], burst[1]]),
    )
    await sset.insert(data)
    return sset


async def test_slices_cover_the_range_within_the_budget(client: AsyncClient, unique_collection: str) -> None:
    sset = await _streams(client, unique_collection)
    slices = await export.plan_slices(sset, T0, END, max_points=100)
    assert slices[0][0] == T0 and slices[-1][1] == END
    assert all(a < b for a, b in slices) and all(x[1] == y[0] for x, y in itertools.pairwise(slices))
    counts = [sum((await sset.count(a, b, precise=True)).values()) for a, b in slices]
    assert max(counts) <= 100 and sum(counts) == 1500
    assert len(slices) >= 15
    with pytest.raises(ValueError, match="max_points"):
        await export.plan_slices(sset, T0, END, max_points=0)


async def test_csv_and_parquet_equal_one_big_read(
    client: AsyncClient, unique_collection: str, tmp_path: Path
) -> None:
    sset = await _streams(client, unique_collection)
    whole = await sset.to_arrow(T0, END)
    rows = await sset.to_csv(tmp_path / "wide.csv", T0, END, max_points=100)
    back = pacsv.read_csv(tmp_path / "wide.csv")
    assert rows == whole.num_rows == back.num_rows
    assert back.column_names == whole.column_names
    np.testing.assert_array_equal(back.column("time").cast(pa.int64()), whole.column("time").cast(pa.int64()))
    for name in whole.column_names[1:]:
        np.testing.assert_array_equal(back.column(name).to_numpy(), whole.column(name).to_numpy())

    narrowed = await sset.filter(start=T0, end=END)
    assert (
        await narrowed.to_parquet(tmp_path / "long.parquet", form="long", labels="name", max_points=100)
        == 1500
    )
    stored = pq.read_table(tmp_path / "long.parquet")
    assert stored.num_rows == 1500 and pq.ParquetFile(tmp_path / "long.parquet").num_row_groups > 5
    want = (await sset.to_arrow(T0, END, form="long", labels="name")).to_pandas()
    got = stored.to_pandas()
    key = ["stream", "time", "value"]
    want = want.astype({"stream": str}).sort_values(key).reset_index(drop=True)
    got = got.astype({"stream": str}).sort_values(key).reset_index(drop=True)
    assert want.equals(got)


async def test_statistics_and_server_generated_csv(
    client: AsyncClient, unique_collection: str, tmp_path: Path
) -> None:
    sset = await _streams(client, unique_collection)
    width = 1 << 30
    stats = await sset.to_arrow(T0, T0 + (1 << 36), width=width)
    rows = await sset.to_csv(tmp_path / "stats.csv", T0, T0 + (1 << 36), width=width, max_points=6)
    back = pacsv.read_csv(tmp_path / "stats.csv")
    assert rows == stats.num_rows == back.num_rows
    np.testing.assert_allclose(back.column(stats.column_names[2]).to_numpy(), stats.column(2).to_numpy())

    n = await sset.to_csv(tmp_path / "server.csv", T0, END, labels="name", generate_csv=True)
    with open(tmp_path / "server.csv", newline="") as f:
        lines = list(csv.reader(f))
    assert lines[0][:2] == ["Timestamp (ns)", "Human-Readable Time (UTC)"]
    assert lines[0][2:] == [f"{unique_collection}/e{i}" for i in range(3)]
    distinct_times = (await sset.to_arrow(T0, END)).num_rows
    assert n == len(lines) - 1 == distinct_times  # one row per time, a cell per stream with a point
    assert sum(1 for row in lines[1:] for cell in row[2:] if cell) == 1500


async def test_empty_range_writes_a_header(
    client: AsyncClient, unique_collection: str, tmp_path: Path
) -> None:
    sset = await _streams(client, unique_collection)
    assert await sset.to_csv(tmp_path / "empty.csv", T0 - 10, T0 - 5) == 0
    header = (tmp_path / "empty.csv").read_text().splitlines()
    assert header == [",".join(f'"{c}"' for c in ["time", *map(str, sset.uuids)])]
    assert await sset.to_parquet(tmp_path / "empty.parquet", T0 - 10, T0 - 5) == 0
    assert pq.read_table(tmp_path / "empty.parquet").num_rows == 0


def test_sync_face(conn: Client, unique_collection: str, tmp_path: Path) -> None:
    stream = conn.create(uuid.uuid4(), unique_collection, {"name": "only"})
    stream.insert(random_points(50, seed=3))
    sset = conn.streamset_from_uuids([stream.uuid])
    assert sset.to_csv(tmp_path / "s.csv", T0, END, max_points=10) == 50
    assert pacsv.read_csv(tmp_path / "s.csv").num_rows == 50
    with open(tmp_path / "s.parquet", "wb") as f:  # a file object works too
        assert sset.to_parquet(f, T0, END) == 50
    assert pq.read_table(tmp_path / "s.parquet").num_rows == 50
