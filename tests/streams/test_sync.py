"""The synchronous Stream and StreamSet: every method through the client's event loop."""

from __future__ import annotations

import datetime as dt
import re
import time
import uuid

import numpy as np
import pyarrow as pa
import pytest

from pingthings.timeseries.client import Client
from pingthings.timeseries.constants import MAXIMUM_TIME, MINIMUM_TIME, STAT_F64_SCHEMA
from pingthings.timeseries.exceptions import (
    InvalidTimeRange,
    PropertyVersionMismatchError,
    StreamNotFoundError,
)
from pingthings.timeseries.stream import Point, Stream
from pingthings.timeseries.streamset import StreamSet

from .helpers import (
    T0,
    aligned_oracle,
    assert_stats_equal,
    assert_tables_equal,
    precise_oracle,
    random_points,
    sorted_points,
    stat_columns,
    table_columns,
)


def _create(conn: Client, collection: str, name: str | None = None, **tags: str) -> Stream:
    return conn.create(uuid.uuid4(), collection, {"name": name or uuid.uuid4().hex[:8], **tags})


def test_stream_reads_and_writes(conn: Client, unique_collection: str) -> None:
    stream = _create(conn, unique_collection, unit="volts")
    assert isinstance(stream, Stream)
    assert stream.collection == unique_collection and stream.unit == "volts"
    assert stream.earliest() is None and stream.latest() is None and stream.count() == 0
    times, values = random_points(6000, seed=21)
    version = stream.insert((times, values))
    assert version == stream.get_latest_version()
    st, sv = sorted_points(times, values)

    got_t, got_v = table_columns(stream.raw_values(MINIMUM_TIME, MAXIMUM_TIME))
    np.testing.assert_array_equal(got_t, st)
    np.testing.assert_array_equal(got_v, sv)
    chunks = list(stream.raw_values_iter(MINIMUM_TIME, MAXIMUM_TIME))
    assert_tables_equal(pa.concat_tables(chunks), stream.raw_values(MINIMUM_TIME, MAXIMUM_TIME))
    for chunk in stream.raw_values_iter(MINIMUM_TIME, MAXIMUM_TIME):  # early exit cancels cleanly
        assert chunk.num_rows
        break
    start = dt.datetime(2020, 1, 1)  # naive = UTC = T0
    assert_tables_equal(stream.raw_values(start, T0 + 10**9), stream.raw_values(T0, T0 + 10**9))

    pw, end = 23, int(st[-1])
    aligned = stream.aligned_windows(T0, end, pw, schema=STAT_F64_SCHEMA)
    assert_stats_equal(stat_columns(aligned), aligned_oracle(times, values, T0, end, pw))
    assert_tables_equal(
        pa.concat_tables(list(stream.aligned_windows_iter(T0, end, pw, schema=STAT_F64_SCHEMA))), aligned
    )
    width = 5_000_003
    precise = stream.precise_windows(T0, end, width, schema=STAT_F64_SCHEMA)
    assert_stats_equal(stat_columns(precise), precise_oracle(times, values, T0, end, width))
    assert_tables_equal(
        pa.concat_tables(list(stream.precise_windows_iter(T0, end, width, schema=STAT_F64_SCHEMA))), precise
    )
    assert stream.windowed_values(T0, end, 1 << pw).equals(stream.aligned_windows(T0, end, pw))

    assert stream.count() == 6000 and stream.count(T0, int(st[10]), precise=True) == 10
    assert stream.earliest() == Point(int(st[0]), float(sv[0]))
    assert stream.latest() == Point(int(st[-1]), float(sv[-1]))
    assert stream.nearest(int(st[5]), backward=True) == Point(int(st[4]), float(sv[4]))

    between = time.time_ns()
    v2 = stream.delete(int(st[0]), int(st[100]))
    assert stream.count() == 5900 and stream.count(version=version) == 6000
    assert stream.get_version_at_time(between) == version
    assert stream.get_version_at_time(time.time_ns()) == v2
    ranges = stream.changes(version, v2)
    assert any(r["start"] <= int(st[50]) < r["end"] for r in ranges)
    assert list(stream.changes_iter(version, v2)) == ranges
    with pytest.raises(InvalidTimeRange):
        stream.raw_values(T0, T0 - 1)
    stream.flush()


def test_stream_metadata_and_lifecycle(conn: Client, unique_collection: str) -> None:
    stream = _create(conn, unique_collection, name="meta")
    bare = conn.stream_from_uuid(stream.uuid)
    assert bare.name == "meta"  # a bare sync handle loads its metadata on first use
    pv = stream.update(annotations={"k": "v"})
    assert stream.annotations() == {"k": "v"} and stream.property_version == pv
    with pytest.raises(PropertyVersionMismatchError):
        bare.update(annotations={"k": "w"})  # bare saw the older property version
    bare.refresh_metadata()
    assert bare.annotations() == {"k": "v"} and bare.tags()["name"] == "meta"
    assert set(stream.get_retention()) == {"retention", "effective"}
    assert stream.exists()
    stream.obliterate()
    assert not stream.exists()
    with pytest.raises(StreamNotFoundError):
        stream.count()


def test_streamset(conn: Client, unique_collection: str) -> None:
    streams = [_create(conn, unique_collection, name=f"p{i}", unit="hz" if i else "v") for i in range(3)]
    sset = StreamSet(streams)
    assert len(sset) == 3 and list(sset) == streams and sset[1] is streams[1]
    assert sset[str(streams[2].uuid)] is streams[2] and streams[0].uuid in sset
    data = {s.uuid: random_points(300, seed=30 + i) for i, s in enumerate(streams)}
    versions = sset.insert(data)
    assert versions == sset.get_latest_version()

    tables = sset.raw_values(MINIMUM_TIME, MAXIMUM_TIME)
    for s, table in zip(streams, tables, strict=True):
        st, sv = sorted_points(*data[s.uuid])
        np.testing.assert_array_equal(table_columns(table)[1], sv)
    joined = sset.raw_values_aligned(T0, T0 + 10**10)
    assert joined.column_names == ["time"] + [str(s.uuid) for s in streams]
    assert int(np.isfinite(joined.column(1).to_numpy()).sum()) == 300

    hz = sset.filter(unit="hz")
    assert isinstance(hz, StreamSet) and [s.name for s in hz] == ["p1", "p2"] and hz[0] is streams[1]
    assert [s.name for s in sset.filter(name=re.compile("^p[02]$"))] == ["p0", "p2"]

    assert sset.count() == {s.uuid: 300 for s in streams}
    earliest, latest = sset.earliest(), sset.latest()
    for s in streams:
        st, sv = sorted_points(*data[s.uuid])
        assert earliest[s.uuid] == Point(int(st[0]), float(sv[0]))
        assert latest[s.uuid] == Point(int(st[-1]), float(sv[-1]))
    cases = (("aligned_windows", 22), ("precise_windows", 2_000_001), ("windowed_values", 1 << 22))
    for method, arg in cases:
        for s, table in zip(streams, getattr(sset, method)(T0, T0 + 10**10, arg), strict=True):
            assert table.equals(getattr(s, method)(T0, T0 + 10**10, arg)), method

    sset.pin_versions()
    assert sset.pinned_versions == versions
    sset.insert({streams[0].uuid: [(T0 - 5, 1.0)]})
    assert sset.count()[streams[0].uuid] == 300
    assert sset.count(versions={streams[0].uuid: 0})[streams[0].uuid] == 301
    changes = sset.changes({s.uuid: 0 for s in streams})
    assert set(changes) == set(versions) and all(changes.values())
    assert sset.get_version_at_time(time.time_ns())[streams[1].uuid] == versions[streams[1].uuid]
    sset.flush()
    sset.refresh_metadata()
    from_client = conn.streamset_from_uuids([s.uuid for s in streams])
    assert isinstance(from_client, StreamSet) and from_client.uuids == sset.uuids


def test_empty_streamset() -> None:
    empty = StreamSet([])
    assert len(empty) == 0 and empty.raw_values(0, 1) == [] and empty.count() == {}
    assert len(empty.filter(unit="x")) == 0
    with pytest.raises(ValueError, match="at least one stream"):
        empty.raw_values_aligned(0, 1)
    with pytest.raises(TypeError, match="Stream objects"):
        StreamSet(["x"])  # type: ignore[list-item]


def test_stream_from_uuid_constructor(conn: Client, unique_collection: str) -> None:
    made = _create(conn, unique_collection, name="ctor")
    again = Stream(conn, uuid=str(made.uuid))
    assert again.uuid == made.uuid and again.name == "ctor" and again == made
    with pytest.raises(TypeError, match="uuid"):
        Stream(conn)
