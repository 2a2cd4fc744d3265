"""AsyncStream writes, versions and metadata against the embedded server (asyncio and trio)."""

from __future__ import annotations

import itertools
import time
import uuid

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from pingthings.timeseries.async_client import AsyncClient
from pingthings.timeseries.constants import MAXIMUM_TIME, MINIMUM_TIME
from pingthings.timeseries.exceptions import (
    BadValue,
    InvalidTimeRange,
    PropertyVersionMismatchError,
    StreamNotFoundError,
)

from .helpers import T0, new_stream, random_points, sorted_points, table_columns

pytestmark = pytest.mark.anyio


async def _stored(stream) -> tuple[np.ndarray, np.ndarray]:
    return table_columns(await stream.raw_values(MINIMUM_TIME, MAXIMUM_TIME))


async def test_insert_accepts_every_documented_form(client: AsyncClient, unique_collection: str) -> None:
    times, values = random_points(200, seed=11)
    st, sv = sorted_points(times, values)
    ts = pd.to_datetime(times, utc=True)
    forms = {
        "arrays": (times, values),
        "pairs": list(zip(times.tolist(), values.tolist(), strict=True)),
        "table_us": pa.table(
            {"time": pa.array(times // 1000).view(pa.timestamp("us", tz="UTC")), "value": values}
        ),
        "table_int": pa.table({"t": times, "v": values}),
        "dataframe": pd.DataFrame({"time": ts, "value": values}),
        "dataframe_index": pd.DataFrame({"x": values}, index=ts),
        "series": pd.Series(values, index=ts),
        "datetime64": (times.astype("datetime64[ns]"), values),
    }
    for label, data in forms.items():
        stream = await new_stream(client, unique_collection)
        version = await stream.insert(data)
        assert version == await stream.get_latest_version(), label
        got_t, got_v = await _stored(stream)
        want_t = st // 1000 * 1000 if label == "table_us" else st
        np.testing.assert_array_equal(got_t, want_t, err_msg=label)
        np.testing.assert_array_equal(got_v, sv, err_msg=label)


async def test_insert_nothing_returns_current_version(client: AsyncClient, unique_collection: str) -> None:
    stream = await new_stream(client, unique_collection)
    before = await stream.get_latest_version()
    assert await stream.insert([]) == before
    assert await stream.insert((np.array([], np.int64), np.array([]))) == before


@pytest.mark.parametrize("merge", ["never", "equal", "retain", "replace"])
async def test_merge_policies(client: AsyncClient, unique_collection: str, merge: str) -> None:
    stream = await new_stream(client, unique_collection)
    old_t = T0 + np.array([0, 10, 20, 30], dtype=np.int64)
    old_v = np.array([1.0, 2.0, 3.0, 4.0])
    await stream.insert((old_t, old_v))
    new_t = T0 + np.array([10, 20, 25], dtype=np.int64)
    new_v = np.array([2.0, 33.0, 5.0])  # t=10: same value; t=20: different value; t=25: new time
    await stream.insert((new_t, new_v), merge=merge)

    stored = {}
    for t, v in zip(old_t.tolist(), old_v.tolist(), strict=True):
        stored.setdefault(t, []).append(v)
    for t, v in zip(new_t.tolist(), new_v.tolist(), strict=True):
        have = stored.setdefault(t, [])
        if merge == "never" or not have:
            have.append(v)
        elif merge == "equal":
            if v not in have:
                have.append(v)
        elif merge == "replace":
            stored[t] = [v]
        # retain: keep the old point
    want = sorted((t, v) for t, vs in stored.items() for v in vs)
    got_t, got_v = await _stored(stream)
    assert sorted(zip(got_t.tolist(), got_v.tolist(), strict=True)) == want


async def test_invalid_merge_policy_sends_nothing(client: AsyncClient, unique_collection: str) -> None:
    stream = await new_stream(client, unique_collection)
    before = await stream.get_latest_version()
    with pytest.raises(ValueError, match="merge must be one of"):
        await stream.insert([(T0, 1.0)], merge="overwrite")
    assert await stream.get_latest_version() == before
    assert await stream.count() == 0


async def test_bad_points_are_rejected_before_sending(client: AsyncClient, unique_collection: str) -> None:
    stream = await new_stream(client, unique_collection)
    times, values = random_points(120_000, seed=12)  # several batches: none may be sent
    values[100_000] = np.nan
    with pytest.raises(BadValue, match="NaN"):
        await stream.insert((times, values))
    values[100_000] = np.inf
    with pytest.raises(BadValue, match="infinite"):
        await stream.insert((times, values))
    with pytest.raises(InvalidTimeRange, match="outside"):
        await stream.insert([(T0, 1.0), (MAXIMUM_TIME, 2.0)])
    with pytest.raises(ValueError, match="differ in length"):
        await stream.insert((times, values[:-1]))
    with pytest.raises(ValueError, match="not a"):
        await stream.insert([(T0, 1.0), (T0 + 1,)])
    with pytest.raises(TypeError, match="insert data must be"):
        await stream.insert(42)
    assert await stream.count() == 0


async def test_delete_keeps_old_versions(client: AsyncClient, unique_collection: str) -> None:
    stream = await new_stream(client, unique_collection)
    times, values = random_points(1000, seed=13)
    v1 = await stream.insert((times, values))
    st, sv = sorted_points(times, values)
    lo, hi = int(st[100]), int(st[600])
    v2 = await stream.delete(lo, hi)
    assert v2 > v1 and v2 == await stream.get_latest_version()
    keep = (st < lo) | (st >= hi)
    got_t, got_v = await _stored(stream)
    np.testing.assert_array_equal(got_t, st[keep])
    np.testing.assert_array_equal(got_v, sv[keep])
    old_t, old_v = table_columns(await stream.raw_values(MINIMUM_TIME, MAXIMUM_TIME, version=v1))
    np.testing.assert_array_equal(old_t, st)
    np.testing.assert_array_equal(old_v, sv)
    assert await stream.count(version=v1) == 1000
    assert await stream.latest(version=v1) == (int(st[-1]), float(sv[-1]))


async def test_changes_cover_what_was_written(client: AsyncClient, unique_collection: str) -> None:
    stream = await new_stream(client, unique_collection)
    first_t, first_v = random_points(300, seed=14)
    v1 = await stream.insert((first_t, first_v))
    await stream.flush()  # buffered inserts share their pending version until it is merged
    second_t = T0 + 10**12 + np.arange(50, dtype=np.int64) * 1000  # well away from the first batch
    v2 = await stream.insert((second_t, np.ones(50)))
    ranges = await stream.changes(v1, v2)
    assert ranges and all(r["start"] < r["end"] for r in ranges)
    assert all(a["end"] <= b["start"] for a, b in itertools.pairwise(ranges))
    for t in second_t.tolist():
        assert any(r["start"] <= t < r["end"] for r in ranges), t
    assert [r async for r in stream.changes_iter(v1, v2)] == ranges
    assert await stream.changes(v1, 0) == ranges  # 0 = latest = v2
    coarse = await stream.changes(v1, v2, resolution=40)
    for t in second_t.tolist():
        assert any(r["start"] <= t < r["end"] for r in coarse)


async def test_version_at_time(client: AsyncClient, unique_collection: str) -> None:
    stream = await new_stream(client, unique_collection)
    v1 = await stream.insert([(T0, 1.0)])
    await stream.flush()  # buffered inserts share their pending version until it is merged
    between = time.time_ns()
    v2 = await stream.insert([(T0 + 1, 2.0)])
    assert v2 > v1
    assert await stream.get_version_at_time(between) == v1
    assert await stream.get_version_at_time(time.time_ns()) == v2


async def test_update_tags_annotations_and_property_version(
    client: AsyncClient, unique_collection: str
) -> None:
    stream = await new_stream(client, unique_collection, unit="volts")
    assert stream.unit == "volts" and stream.collection == unique_collection
    pv = stream.property_version
    pv = await stream.update(annotations={"site": "north", "rating": 12.5, "phases": [1, 2, 3]})
    assert stream.annotations() == {"site": "north", "rating": 12.5, "phases": [1, 2, 3]}
    pv2 = await stream.update(tags={"unit": "amps"})
    assert pv2 == pv + 1 and stream.unit == "amps" and stream.name is not None
    pv3 = await stream.update(annotations={"site": "south"}, replace=True)
    assert pv3 == pv2 + 1 and stream.annotations() == {"site": "south"}
    new_collection = unique_collection + "/moved"
    await stream.update(collection=new_collection)
    other = await client.stream_from_uuid(stream.uuid)
    await other.refresh_metadata()
    assert other.collection == new_collection and other.tags() == stream.tags()
    assert other.annotations() == {"site": "south"} and other.property_version == stream.property_version

    # a handle with a stale property version cannot overwrite a newer change
    await other.update(annotations={"site": "east"})
    with pytest.raises(PropertyVersionMismatchError):
        await stream.update(annotations={"site": "west"})
    await stream.refresh_metadata()
    assert stream.annotations()["site"] == "east"
    with pytest.raises(ValueError, match="at least one"):
        await stream.update()
    with pytest.raises(TypeError, match="tags must be a dict"):
        await stream.update(tags=["unit"])  # type: ignore[arg-type]


async def test_metadata_of_a_bare_handle(client: AsyncClient, unique_collection: str) -> None:
    stream = await new_stream(client, unique_collection, unit="hz")
    bare = await client.stream_from_uuid(str(stream.uuid))
    assert not bare.has_metadata and bare.collection is None and bare.tags() == {}
    await bare.ensure_metadata()
    assert bare.name == stream.name and bare.unit == "hz" and bare.collection == unique_collection
    assert await bare.exists()
    assert not await (await client.stream_from_uuid(uuid.uuid4())).exists()


async def test_flush_obliterate_and_missing_streams(client: AsyncClient, unique_collection: str) -> None:
    stream = await new_stream(client, unique_collection)
    await stream.insert([(T0, 1.0)])
    await stream.flush()
    assert await stream.count() == 1
    await stream.obliterate()
    assert not await stream.exists()
    with pytest.raises(StreamNotFoundError):
        await stream.raw_values(MINIMUM_TIME, MAXIMUM_TIME)
    with pytest.raises(StreamNotFoundError):
        await stream.insert([(T0, 1.0)])
    with pytest.raises(StreamNotFoundError):
        await stream.get_latest_version()


async def test_get_retention_default(client: AsyncClient, unique_collection: str) -> None:
    stream = await new_stream(client, unique_collection)
    retention = await stream.get_retention()
    assert set(retention) == {"retention", "effective"}
    effective = retention["effective"]
    assert effective is None or effective["remove_older_than"] is None
