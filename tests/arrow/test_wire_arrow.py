"""Arrow schemas and IPC helpers round-trip tables without losing a nanosecond."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from pingthings.wire import arrow
from pingthings.wire.limits import MIN_TIME, TIME_LIMIT

times_st = hnp.arrays(np.int64, st.integers(0, 200), elements=st.integers(MIN_TIME, TIME_LIMIT - 2))


@given(times_st, st.data())
def test_raw_table_round_trips_through_ipc(times: np.ndarray, data: st.DataObject) -> None:
    values = data.draw(hnp.arrays(np.float64, len(times), elements=st.floats(allow_nan=False)))
    table = arrow.raw_table(times, values)
    assert table.schema.equals(arrow.RAW_SCHEMA)
    back = arrow.ipc_to_table(arrow.table_to_ipc(table))
    got_t, got_v = arrow.table_to_points(back)
    np.testing.assert_array_equal(got_t, times)
    np.testing.assert_array_equal(got_v.view(np.int64), values.view(np.int64))


def test_raw_table_views_numpy_memory() -> None:
    times = np.arange(1000, dtype=np.int64)
    table = arrow.raw_table(times, np.zeros(1000))
    assert np.shares_memory(table.column("time").chunk(0).to_numpy().view(np.int64), times)


def test_empty_table_keeps_its_schema_through_ipc() -> None:
    empty = arrow.raw_table(np.empty(0, np.int64), np.empty(0))
    back = arrow.ipc_to_table(arrow.table_to_ipc(empty))
    assert back.num_rows == 0
    assert back.schema.equals(arrow.RAW_SCHEMA)


def test_stat_table_has_the_client_checked_schema() -> None:
    class W:
        time = np.array([0, 8], np.int64)
        min = np.array([1.0, 2.0])
        mean = np.array([1.5, 2.5])
        max = np.array([2.0, 3.0])
        count = np.array([2, 2], np.uint64)
        stddev = np.array([0.5, 0.5])

    table = arrow.stat_table(W())
    assert table.schema.equals(arrow.STAT_SCHEMA)
    assert table.column("count").to_pylist() == [2, 2]


def test_template_casts_and_renames_by_position() -> None:
    table = arrow.raw_table(np.array([5, 6], np.int64), np.array([1.5, 2.5]))
    template = pa.schema([("t", pa.int64()), ("v", pa.float32())])
    schema = arrow.ipc_to_schema(arrow.schema_to_ipc(template))
    assert schema is not None
    out = arrow.apply_template(table, schema)
    assert out.schema.equals(template)
    assert out.column("t").to_pylist() == [5, 6]
    assert arrow.ipc_to_schema(b"") is None


def test_template_with_wrong_width_is_a_clear_error() -> None:
    table = arrow.raw_table(np.array([5], np.int64), np.array([1.0]))
    with pytest.raises(arrow.ArrowFormatError, match="3 fields"):
        arrow.apply_template(table, pa.schema([("a", pa.int64()), ("b", pa.int64()), ("c", pa.int64())]))


def test_insert_tables_accept_other_time_units_and_reject_nulls() -> None:
    ms = pa.table({"t": pa.array([1, 2], pa.timestamp("ms")), "v": pa.array([1, 2], pa.int32())})
    times, values = arrow.table_to_points(ms)
    np.testing.assert_array_equal(times, [1_000_000, 2_000_000])
    assert values.dtype == np.float64
    with pytest.raises(arrow.ArrowFormatError, match="nulls"):
        arrow.table_to_points(pa.table({"t": [1, None], "v": [1.0, 2.0]}))
    with pytest.raises(arrow.ArrowFormatError, match="IPC"):
        arrow.ipc_to_table(b"not arrow at all")
