"""The pure helpers behind the stream classes: insert data conversion, batching, filters, joins."""

from __future__ import annotations

import datetime as dt
import itertools
import re
import uuid
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pytest

from pingthings.timeseries._align import align, snap
from pingthings.timeseries._filters import stream_matches
from pingthings.timeseries._insert import batch_bounds, merge_policy_value, prepare
from pingthings.timeseries._timeargs import to_ns, to_point_width, to_version, to_width
from pingthings.timeseries.exceptions import BadValue, InvalidTimeRange


def test_merge_policy_names() -> None:
    assert [merge_policy_value(m) for m in ("never", "EQUAL", " retain ", "replace")] == [0, 1, 2, 3]
    for bad in ("overwrite", "", None, 2):
        with pytest.raises(ValueError, match="merge must be one of"):
            merge_policy_value(bad)


def test_prepare_sorts_stably_and_keeps_duplicates() -> None:
    times = np.array([5, 1, 5, 3, 1], dtype=np.int64)
    values = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    t, v = prepare((times, values))
    np.testing.assert_array_equal(t, [1, 1, 3, 5, 5])
    np.testing.assert_array_equal(v, [2.0, 5.0, 4.0, 1.0, 3.0])  # equal times keep their order


def test_prepare_rejects_bad_data_with_clear_errors() -> None:
    with pytest.raises(BadValue, match="row 1"):
        prepare((np.array([1, 2]), np.array([0.0, np.nan])))
    with pytest.raises(ValueError, match="null"):
        prepare(pa.table({"time": pa.array([1, None], pa.int64()), "value": [1.0, 2.0]}))
    with pytest.raises(ValueError, match="time and a value"):
        prepare(pa.table({"time": [1]}))
    with pytest.raises(ValueError, match="NaT"):
        prepare((np.array(["2020-01-01", "NaT"], dtype="datetime64[ns]"), np.array([1.0, 2.0])))
    with pytest.raises(TypeError, match="not a number"):
        prepare([(1, "x")])
    with pytest.raises(ValueError, match="whole numbers"):
        prepare((np.array([1.5]), np.array([1.0])))


def test_prepare_names_the_callers_row_and_checks_times_sorted_or_not() -> None:
    # Unsorted data: the bad value is named by its row in the data given, not in the sorted batch.
    with pytest.raises(BadValue, match="row 0 "):
        prepare((np.array([9, 2, 5]), np.array([np.inf, 1.0, 2.0])))
    for times in ([1, 2, 2**62], [2**62, 1, 2], [-(2**61), 5, 7], [5, -(2**61), 7]):
        with pytest.raises(InvalidTimeRange, match="outside the storable range"):
            prepare((np.array(times, dtype=np.int64), np.ones(3)))
    with pytest.raises(ValueError, match="differ in length"):
        prepare((np.array([1, 2, 3]), np.ones(2)))


def test_inserting_arrays_does_not_import_pandas(imports_pandas: Callable[[str], bool]) -> None:
    # The check for a DataFrame imported pandas (0.4 s) on a client's first insert of plain arrays.
    script = (
        "import sys, numpy as np\n"
        "from pingthings.timeseries._insert import prepare\n"
        "prepare((np.arange(3), np.ones(3)))\n"
        "prepare([(1, 2.0)])\n"
    )
    assert not imports_pandas(script)


def test_prepare_converts_times() -> None:
    when = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    ns = 1_577_836_800_000_000_000
    t, _ = prepare([(when, 1.0), (np.datetime64(ns + 5, "ns"), 2.0)])
    np.testing.assert_array_equal(t, [ns, ns + 5])
    t, _ = prepare(pa.table({"time": pa.array([ns // 1000], pa.timestamp("us")), "value": [1.0]}))
    np.testing.assert_array_equal(t, [ns])


@pytest.mark.parametrize("size", [1, 2, 3, 7])
def test_batches_never_split_a_run_of_equal_times(size: int) -> None:
    rng = np.random.default_rng(size)
    times = np.sort(rng.integers(0, 8, size=40))
    bounds = batch_bounds(times, size)
    assert bounds[0][0] == 0 and bounds[-1][1] == times.size
    for (lo, hi), (lo2, _) in itertools.pairwise(bounds):
        assert hi == lo2 and hi > lo
        assert times[hi - 1] != times[hi]
    # a batch grows past `size` only to finish the run of equal times at its boundary
    assert all(hi - lo <= size or times[lo + size - 1] == times[hi - 1] for lo, hi in bounds)


def test_argument_checks() -> None:
    assert to_ns(np.int64(5)) == 5
    assert to_ns(dt.datetime(1970, 1, 1, 0, 0, 1)) == 1_000_000_000
    with pytest.raises(TypeError, match="start"):
        to_ns(None, "start")
    with pytest.raises(TypeError, match="start"):
        to_ns(True, "start")
    with pytest.raises(ValueError, match="64-bit"):
        to_ns(1 << 70)
    assert to_version(None) == 0
    with pytest.raises(ValueError, match="version"):
        to_version(-1)
    assert to_point_width(np.int8(10)) == 10
    assert to_width(dt.timedelta(seconds=2)) == 2_000_000_000
    assert to_width(np.timedelta64(3, "ms")) == 3_000_000
    with pytest.raises(ValueError, match="width"):
        to_width(0)


def test_filter_matching_rules() -> None:
    tags = {"name": "Voltage", "unit": "volts"}
    ann = {"site": "north", "n": 3}
    assert stream_matches("a/b", tags, ann, "a/b", None, None, None, None)
    assert not stream_matches("a/b", tags, ann, "a", None, None, None, None)  # exact
    assert stream_matches("a/b", tags, ann, re.compile("^a/"), None, None, None, None)
    assert stream_matches("a/b", tags, ann, None, "voltage", "VOLTS", None, None)  # case ignored, as btrdb
    assert not stream_matches("a/b", tags, ann, None, None, None, {"name": "voltage"}, None)  # tags: exact
    assert stream_matches("a/b", tags, ann, None, re.compile("(?i)voltage"), "volts", None, None)
    assert stream_matches("a/b", tags, ann, None, None, None, {"unit": None}, {"n": "3"})
    assert not stream_matches("a/b", tags, ann, None, None, None, {"ingress": None}, None)


def test_snap_and_align_follow_the_server_rules() -> None:
    period = 10
    snapped = snap(np.array([-6, -5, -4, 4, 5, 14, 15]), period)
    np.testing.assert_array_equal(snapped, [-10, 0, 0, 0, 10, 10, 20])  # nearest, ties up
    table = align(
        ["a", "b"],  # type: ignore[list-item]
        [(np.array([1, 4, 6, 29]), np.array([1.0, 2.0, 3.0, 4.0])), (np.array([18]), np.array([9.0]))],
        0,
        30,
        period,
    )
    times = table.column("time").combine_chunks().view(pa.int64()).to_numpy()
    np.testing.assert_array_equal(times, [0, 10, 20])  # 29 snaps to 30: past the end
    np.testing.assert_array_equal(table.column("a").to_numpy(), [2.0, 3.0, np.nan])  # last point per slot
    np.testing.assert_array_equal(table.column("b").to_numpy(), [np.nan, np.nan, 9.0])


@pytest.mark.parametrize("merge", [0, 1, 2, 3])
def test_hand_encoded_arrow_insert_matches_the_message_class(merge: int) -> None:
    from pingthings._proto.v5api import ArrowInsertParams, MergePolicy
    from pingthings.timeseries._data_calls import _arrow_insert_request

    stream_id = uuid.uuid4()
    ipc = bytes(range(256)) * 300  # longer than one varint byte of length
    want = bytes(ArrowInsertParams(uuid=stream_id.bytes, merge_policy=MergePolicy(merge), arrow_bytes=ipc))
    assert _arrow_insert_request(stream_id, merge, ipc) == want


def test_results_are_conformed_to_the_schema_by_name() -> None:
    from pingthings.timeseries._data_calls import _conform
    from pingthings.timeseries.constants import STAT_F64_SCHEMA

    ts = pa.array([1, 2], pa.int64()).view(pa.timestamp("ns", tz="UTC"))
    reordered = pa.table(
        {
            "time": ts,
            "mean": [2.0, 3.0],
            "min": [1.0, 2.0],
            "max": [4.0, 5.0],
            "count": pa.array([3, 4], pa.uint64()),
            "stddev": [0.5, 0.25],
        }
    )
    got = _conform(reordered, STAT_F64_SCHEMA)
    assert got.schema.equals(STAT_F64_SCHEMA)
    assert got.column("min").to_pylist() == [1.0, 2.0] and got.column("mean").to_pylist() == [2.0, 3.0]
