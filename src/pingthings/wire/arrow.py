"""Arrow schemas and IPC helpers shared by the client and the server.

The Arrow RPCs of BTrDB v5 carry complete Arrow IPC *streams* (schema, record batches, end marker) in
``arrowBytes``. Tables are built from numpy arrays without copying: an ``int64`` array becomes a
``timestamp[ns, UTC]`` column by a zero-copy view.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import pyarrow as pa

#: The Arrow type of every time column: nanoseconds since the epoch, UTC.
TIME_TYPE = pa.timestamp("ns", tz="UTC")

#: Raw values: one row per point.
RAW_SCHEMA = pa.schema(
    [pa.field("time", TIME_TYPE, nullable=False), pa.field("value", pa.float64(), nullable=False)]
)

#: Statistical windows, in the column order the v5 servers send and the official client checks.
STAT_SCHEMA = pa.schema(
    [
        pa.field("time", TIME_TYPE, nullable=False),
        pa.field("min", pa.float64(), nullable=False),
        pa.field("mean", pa.float64(), nullable=False),
        pa.field("max", pa.float64(), nullable=False),
        pa.field("count", pa.uint64(), nullable=False),
        pa.field("stddev", pa.float64(), nullable=False),
    ]
)


class ArrowFormatError(ValueError):
    """Bytes that should hold an Arrow IPC stream don't, or a table cannot take the asked shape."""


class StatColumns(Protocol):
    """Anything with the six statistic arrays (the engine's ``StatWindows``, a decoded response)."""

    time: Any
    min: Any
    mean: Any
    max: Any
    count: Any
    stddev: Any


def time_array(times: np.ndarray) -> pa.Array:
    """A ``timestamp[ns, UTC]`` array viewing the memory of an ``int64`` numpy array."""
    return pa.array(np.ascontiguousarray(times, dtype=np.int64)).view(TIME_TYPE)


def raw_table(times: np.ndarray, values: np.ndarray) -> pa.Table:
    """A table in :data:`RAW_SCHEMA` from equal-length time and value arrays (no copy when possible).

    Parameters
    ----------
    times
        ``int64`` nanoseconds.
    values
        ``float64`` values.
    """
    if len(times) != len(values):
        raise ArrowFormatError(f"times has {len(times)} entries but values has {len(values)}")
    return pa.Table.from_arrays(
        [time_array(times), pa.array(np.ascontiguousarray(values, dtype=np.float64))], schema=RAW_SCHEMA
    )


def stat_table(windows: StatColumns) -> pa.Table:
    """A table in :data:`STAT_SCHEMA` from an object exposing the six statistic arrays."""
    return pa.Table.from_arrays(
        [
            time_array(np.asarray(windows.time)),
            pa.array(np.ascontiguousarray(windows.min, dtype=np.float64)),
            pa.array(np.ascontiguousarray(windows.mean, dtype=np.float64)),
            pa.array(np.ascontiguousarray(windows.max, dtype=np.float64)),
            pa.array(np.ascontiguousarray(windows.count, dtype=np.uint64)),
            pa.array(np.ascontiguousarray(windows.stddev, dtype=np.float64)),
        ],
        schema=STAT_SCHEMA,
    )


def table_to_ipc(table: pa.Table) -> bytes:
    """Serialise ``table`` as one complete IPC stream; an empty table still carries its schema."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def ipc_to_table(data: bytes | memoryview) -> pa.Table:
    """Read one complete IPC stream into a table (zero-copy over ``data``)."""
    try:
        return pa.ipc.open_stream(pa.py_buffer(data)).read_all()
    except (pa.ArrowInvalid, OSError) as exc:
        raise ArrowFormatError(f"not an Arrow IPC stream: {exc}") from None


def schema_to_ipc(schema: pa.Schema) -> bytes:
    """An IPC stream holding only ``schema`` (the form of a ``templateBytes`` field)."""
    return table_to_ipc(schema.empty_table())


def ipc_to_schema(data: bytes | memoryview) -> pa.Schema | None:
    """The schema of a template IPC stream, or None for empty bytes (no template sent)."""
    if not len(data):
        return None
    try:
        return pa.ipc.open_stream(pa.py_buffer(data)).schema
    except (pa.ArrowInvalid, OSError) as exc:
        raise ArrowFormatError(f"template is not an Arrow IPC stream: {exc}") from None


def apply_template(table: pa.Table, schema: pa.Schema | None) -> pa.Table:
    """Rename and cast ``table``'s columns, by position, to ``schema`` (None leaves it as it is).

    Raises
    ------
    ArrowFormatError
        When the column counts differ or a column cannot be cast (the message names the column).
    """
    if schema is None:
        return table
    if len(schema) != table.num_columns:
        raise ArrowFormatError(
            f"template schema has {len(schema)} fields but the result has {table.num_columns} columns"
        )
    columns = []
    for index, field in enumerate(schema):
        column = table.column(index)
        try:
            columns.append(column.cast(field.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            name = table.schema.field(index).name
            raise ArrowFormatError(f"cannot cast column {name!r} to {field.type}: {exc}") from None
    return pa.Table.from_arrays(columns, schema=schema)


def table_to_points(table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """The (time, value) columns of an insert table as ``int64`` and ``float64`` numpy arrays.

    The first column holds the times (a timestamp of any unit or time zone, or integer ns) and
    the second the values (any numeric type). Other columns are an error, as are nulls.
    """
    if table.num_columns != 2:
        raise ArrowFormatError(f"an insert table needs 2 columns (time, value), got {table.num_columns}")
    time_col, value_col = table.column(0), table.column(1)
    if time_col.null_count or value_col.null_count:
        raise ArrowFormatError("an insert table may not hold nulls")
    try:
        if pa.types.is_timestamp(time_col.type):
            time_col = time_col.cast(pa.timestamp("ns", tz=time_col.type.tz)).cast(pa.int64())
        elif pa.types.is_integer(time_col.type):
            time_col = time_col.cast(pa.int64())
        else:
            raise ArrowFormatError(f"the time column must be a timestamp or an integer, not {time_col.type}")
    except pa.ArrowInvalid as exc:
        raise ArrowFormatError(f"the time column does not fit int64 nanoseconds: {exc}") from None
    if not (pa.types.is_floating(value_col.type) or pa.types.is_integer(value_col.type)):
        raise ArrowFormatError(f"the value column must be numeric, not {value_col.type}")
    times = time_col.to_numpy()
    values = value_col.cast(pa.float64()).to_numpy()
    return np.asarray(times, dtype=np.int64), np.asarray(values, dtype=np.float64)
