"""Arrow helpers: table builders, IPC framing, templates and ArrowInsert decoding."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from pingthings.wire import arrow
from pingthings.wire.protowire import WireFormatError


@dataclass
class Windows:
    time: np.ndarray
    min: np.ndarray
    mean: np.ndarray
    max: np.ndarray
    count: np.ndarray
    stddev: np.ndarray


def _windows(n: int, seed: int = 0) -> Windows:
    rng = np.random.default_rng(seed)
    return Windows(
        np.sort(rng.integers(-(1 << 50), 1 << 50, n)),
        rng.normal(size=n),
        rng.normal(size=n),
        rng.normal(size=n),
        rng.integers(0, 1 << 63, n).astype(np.uint64),
        rng.random(n),
    )


def test_stat_table_from_object_or_arrays_is_the_same_table() -> None:
    w = _windows(50)
    by_object = arrow.stat_table(w)
    by_arrays = arrow.stat_table(w.time, w.min, w.mean, w.max, w.count, w.stddev)
    assert by_object.equals(by_arrays)
    assert by_object.schema.equals(arrow.STAT_SCHEMA)
    for name in ("min", "mean", "max", "count", "stddev"):
        np.testing.assert_array_equal(by_object.column(name).to_numpy(), getattr(w, name))
    np.testing.assert_array_equal(by_object.column("time").to_numpy().view(np.int64), w.time)


def test_stat_table_round_trips_through_ipc_without_copying_on_read() -> None:
    table = arrow.stat_table(_windows(1000, seed=3))
    payload = arrow.table_to_ipc(table)
    back = arrow.ipc_to_table(payload)
    assert back.equals(table) and back.schema.equals(arrow.STAT_SCHEMA)
    column = back.column("mean").chunk(0).to_numpy()
    assert np.shares_memory(column, np.frombuffer(payload, np.uint8))


def test_stat_table_argument_errors() -> None:
    w = _windows(3)
    with pytest.raises(TypeError, match="all six"):
        arrow.stat_table(w.time, w.min)
    with pytest.raises(TypeError, match="windows object"):
        arrow.stat_table(np.array([1]))
    with pytest.raises(arrow.ArrowFormatError, match="count must not be negative"):
        arrow.stat_table(w.time, w.min, w.mean, w.max, np.array([1, -1, 2]), w.stddev)
    with pytest.raises(arrow.ArrowFormatError, match="max has 2 entries, expected 3"):
        arrow.stat_table(w.time, w.min, w.mean, w.max[:2], w.count, w.stddev)


def test_raw_table_input_errors() -> None:
    with pytest.raises(arrow.ArrowFormatError, match="times must hold integers"):
        arrow.raw_table(np.array([1.5]), np.array([1.0]))
    with pytest.raises(arrow.ArrowFormatError, match="values has 1 entries, expected 2"):
        arrow.raw_table(np.array([1, 2]), np.array([1.0]))
    with pytest.raises(arrow.ArrowFormatError, match="one-dimensional"):
        arrow.raw_table(np.zeros((2, 2), np.int64), np.zeros(4))


def test_raw_table_accepts_datetime64_and_strided_views() -> None:
    stamps = np.array(["2024-01-01T00:00:00.000000001", "2024-01-01T00:00:01"], dtype="datetime64[ns]")
    table = arrow.raw_table(stamps, np.array([1, 2], dtype=np.int16))
    assert table.column("time").to_numpy().view(np.int64).tolist() == stamps.view(np.int64).tolist()
    strided = np.arange(20, dtype=np.int64)[::2]
    assert (
        arrow.raw_table(strided, np.ones(10)).column(0).to_numpy().view(np.int64).tolist() == strided.tolist()
    )


def test_errors_are_wire_format_errors_and_value_errors() -> None:
    assert issubclass(arrow.ArrowFormatError, WireFormatError)
    assert issubclass(arrow.ArrowFormatError, ValueError)
    with pytest.raises(WireFormatError, match="IPC"):
        arrow.ipc_to_table(b"\xff\xff\xff\xff\x10\x00\x00\x00garbage")
    with pytest.raises(WireFormatError, match="template"):
        arrow.ipc_to_schema(b"definitely not arrow")


def test_ipc_reads_from_unaligned_memoryview() -> None:
    table = arrow.raw_table(np.arange(100, dtype=np.int64), np.linspace(0, 1, 100))
    framed = b"\x00" * 9 + arrow.table_to_ipc(table)
    assert arrow.ipc_to_table(memoryview(framed)[9:]).equals(table)


def test_schema_stream_round_trip_keeps_names_types_nullability_and_metadata() -> None:
    schema = pa.schema(
        [pa.field("t", pa.int64(), nullable=False), pa.field("v", pa.float32())], metadata={b"k": b"v"}
    )
    payload = arrow.schema_to_ipc(schema)
    back = arrow.ipc_to_schema(payload)
    assert back is not None and back.equals(schema, check_metadata=True)
    assert arrow.ipc_to_table(payload).num_rows == 0


@given(hnp.arrays(np.int64, st.integers(0, 50), elements=st.integers(-(1 << 60), 3 << 60)), st.data())
def test_template_int64_float32_matches_numpy(times: np.ndarray, data: st.DataObject) -> None:
    values = data.draw(hnp.arrays(np.float64, len(times), elements=st.floats(-1e30, 1e30)))
    template = arrow.ipc_to_schema(arrow.schema_to_ipc(pa.schema([("t", pa.int64()), ("v", pa.float32())])))
    assert template is not None
    out = arrow.apply_template(arrow.raw_table(times, values), template)
    assert out.schema.equals(template)
    assert out.column("t").to_numpy().tolist() == times.tolist()
    np.testing.assert_array_equal(out.column("v").to_numpy(), values.astype(np.float32))


def test_template_renames_stat_tables_and_reports_impossible_casts() -> None:
    table = arrow.stat_table(_windows(4))
    names = ["a", "b", "c", "d", "e", "f"]
    renamed = arrow.apply_template(
        table, pa.schema([(n, f.type) for n, f in zip(names, table.schema, strict=True)])
    )
    assert renamed.column_names == names and renamed.column("e").equals(table.column("count"))
    bad = pa.schema([("t", pa.int64()), ("v", pa.list_(pa.int64()))])
    with pytest.raises(arrow.ArrowFormatError, match="cannot cast column 'value'"):
        arrow.apply_template(arrow.raw_table(np.array([1]), np.array([1.0])), bad)
    assert arrow.apply_template(table, None) is table


def test_template_refuses_nulls_in_a_non_nullable_field() -> None:
    table = pa.table({"time": pa.array([1, 2], pa.int64()), "value": pa.array([1.0, None])})
    with pytest.raises(arrow.ArrowFormatError, match="nulls"):
        arrow.apply_template(
            table, pa.schema([("t", pa.int64()), pa.field("v", pa.float64(), nullable=False)])
        )
    kept = arrow.apply_template(table, pa.schema([("t", pa.int64()), ("v", pa.float64())]))
    assert kept.column("v").null_count == 1


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
@pytest.mark.parametrize("tz", [None, "UTC", "America/New_York"])
def test_insert_table_time_units_and_zones(unit: str, tz: str | None) -> None:
    ticks = np.array([-5, 0, 7, 1_700_000_000], dtype=np.int64)
    table = pa.table(
        {"x": pa.array(ticks, pa.timestamp(unit, tz=tz)), "y": pa.array(ticks.astype(np.float32))}
    )
    times, values = arrow.table_to_points(table)
    oracle = ticks.astype(f"datetime64[{unit}]").astype("datetime64[ns]").view(np.int64)
    assert times.dtype == np.int64 and times.tolist() == oracle.tolist()
    assert (
        values.dtype == np.float64 and values.tolist() == ticks.astype(np.float32).astype(np.float64).tolist()
    )


def test_insert_table_integer_times_and_chunks() -> None:
    first = pa.table({"t": pa.array([1, 2], pa.int32()), "v": pa.array([1, 2], pa.uint8())})
    second = pa.table({"t": pa.array([3], pa.int32()), "v": pa.array([9], pa.uint8())})
    times, values = arrow.table_to_points(pa.concat_tables([first, second]))
    assert times.tolist() == [1, 2, 3] and values.tolist() == [1.0, 2.0, 9.0]


@pytest.mark.parametrize(
    ("table", "words"),
    [
        (pa.table({"t": [1], "v": [1.0], "w": [2.0]}), "2 columns"),
        (pa.table({"t": [1.5], "v": [1.0]}), "timestamp or an integer"),
        (pa.table({"t": [1], "v": ["x"]}), "numeric"),
        (pa.table({"t": pa.array([10**12], pa.timestamp("s")), "v": [1.0]}), "int64 nanoseconds"),
        (pa.table({"t": [1, 2], "v": [1.0, None]}), "nulls"),
        (pa.table({"t": [1], "v": [2**60 + 1]}), "float64"),
    ],
)
def test_insert_table_errors_name_the_problem(table: pa.Table, words: str) -> None:
    with pytest.raises(arrow.ArrowFormatError, match=words):
        arrow.table_to_points(table)


def test_the_server_and_its_tables_do_not_import_pandas(imports_pandas: Callable[[str], bool]) -> None:
    # pyarrow imports pandas (0.4 s) the first time pa.array converts a numpy array; the server imported
    # it at start through wire.arrow_insert, and a client's first table paid it again.
    script = (
        "import sys, numpy as np\n"
        "import pingthings.server.app\n"
        "from pingthings.wire import arrow\n"
        "arrow.raw_table(np.arange(3), np.ones(3))\n"
        "arrow.stat_table(np.arange(3), *[np.ones(3)] * 3, np.ones(3, np.uint64), np.ones(3))\n"
    )
    assert not imports_pandas(script)
