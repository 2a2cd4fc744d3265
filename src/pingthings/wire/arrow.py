"""Arrow schemas and IPC helpers shared by the client and the server.

The Arrow RPCs of BTrDB v5 carry complete Arrow IPC *streams* (schema, record batches, end marker) in
``arrowBytes``. Tables are built from numpy arrays without copying: an ``int64`` array becomes a
``timestamp[ns, UTC]`` column by a zero-copy view.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import pyarrow as pa
from numpy.typing import ArrayLike

from pingthings.wire.protowire import WireFormatError

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


class ArrowFormatError(WireFormatError):
    """Bytes that should hold an Arrow IPC stream don't, or a table cannot take the asked shape.

    A :class:`~pingthings.wire.protowire.WireFormatError`, hence a ``ValueError``.
    """


class StatColumns(Protocol):
    """Anything with the six statistic arrays (the engine's ``StatWindows``, a decoded response)."""

    time: Any
    min: Any
    mean: Any
    max: Any
    count: Any
    stddev: Any


def _numpy_column(values: ArrayLike, dtype: type, name: str, n: int | None = None) -> np.ndarray:
    """``values`` as a contiguous 1-D array of ``dtype`` (no copy if it already is one), checked."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise ArrowFormatError(f"{name} must be one-dimensional, got shape {array.shape}")
    if n is not None and len(array) != n:
        raise ArrowFormatError(f"{name} has {len(array)} entries, expected {n}")
    if array.dtype.kind == "M" and dtype is np.int64:
        array = array.astype("datetime64[ns]").view(np.int64)
    allowed = "iu" if np.dtype(dtype).kind in "iu" else "iuf"
    if array.size and array.dtype.kind not in allowed:
        kind = "integers" if allowed == "iu" else "numbers"
        raise ArrowFormatError(f"{name} must hold {kind}, got dtype {array.dtype}")
    if np.dtype(dtype).kind == "u" and array.dtype.kind == "i" and array.size and int(array.min()) < 0:
        raise ArrowFormatError(f"{name} must not be negative")
    return np.ascontiguousarray(array, dtype=dtype)


def time_array(times: ArrayLike) -> pa.Array:
    """A ``timestamp[ns, UTC]`` array viewing the memory of an ``int64`` numpy array.

    Built from the buffer directly: ``pa.array(...).view(TIME_TYPE)`` imports pandas on its first
    call (0.3 s of CPU, more on a busy machine), which a freshly started server paid in its first
    joined read.
    """
    column = _numpy_column(times, np.int64, "times")
    return pa.Array.from_buffers(TIME_TYPE, len(column), [None, pa.py_buffer(column)])


def array_viewing(column: np.ndarray) -> pa.Array:
    """An Arrow array of ``column``'s type viewing its memory (built from its buffer, as
    :func:`time_array`: ``pa.array`` of a numpy array imports pandas on its first call)."""
    return pa.Array.from_buffers(pa.from_numpy_dtype(column.dtype), len(column), [None, pa.py_buffer(column)])


def float_array(values: ArrayLike) -> pa.Array:
    """A ``float64`` array viewing the memory of a numpy array."""
    return array_viewing(_numpy_column(values, np.float64, "values"))


def raw_table(times: ArrayLike, values: ArrayLike) -> pa.Table:
    """A table in :data:`RAW_SCHEMA` from equal-length time and value arrays (no copy when possible).

    Columns view the arrays' buffers (:func:`array_viewing`): ``pa.array`` would import pandas (0.4 s) in the
    first call, which was the server's start (``wire.arrow_insert`` builds a table when it is imported).

    Parameters
    ----------
    times
        ``int64`` nanoseconds (or ``datetime64``).
    values
        ``float64`` values (other numeric dtypes are converted).
    """
    time_column = time_array(times)
    value_column = array_viewing(_numpy_column(values, np.float64, "values", len(time_column)))
    return pa.Table.from_arrays([time_column, value_column], schema=RAW_SCHEMA)


def stat_table(
    time: ArrayLike | StatColumns,
    min: ArrayLike | None = None,
    mean: ArrayLike | None = None,
    max: ArrayLike | None = None,
    count: ArrayLike | None = None,
    stddev: ArrayLike | None = None,
) -> pa.Table:
    """A table in :data:`STAT_SCHEMA` from the six statistic arrays.

    Call it as ``stat_table(windows)`` with an object exposing ``time``, ``min``, ``mean``, ``max``,
    ``count`` and ``stddev`` (the engine's ``StatWindows``, a decoded response), or with the six
    arrays as arguments.
    """
    if min is None and mean is None and max is None and count is None and stddev is None:
        if not hasattr(time, "stddev"):
            raise TypeError(
                "stat_table takes a windows object or the six arrays time, min, mean, max, count, stddev"
            )
        w: Any = time
        time, min, mean, max, count, stddev = w.time, w.min, w.mean, w.max, w.count, w.stddev
    elif any(a is None for a in (min, mean, max, count, stddev)):
        raise TypeError("stat_table needs all six arrays: time, min, mean, max, count, stddev")
    time_column = time_array(time)  # type: ignore[arg-type]
    n = len(time_column)
    columns = [time_column]
    arrays: tuple[tuple[str, Any, type], ...] = (
        ("min", min, np.float64),
        ("mean", mean, np.float64),
        ("max", max, np.float64),
        ("count", count, np.uint64),
        ("stddev", stddev, np.float64),
    )
    for name, values, dtype in arrays:
        columns.append(array_viewing(_numpy_column(values, dtype, name, n)))
    return pa.Table.from_arrays(columns, schema=STAT_SCHEMA)


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
        if not field.nullable and column.null_count:
            name = table.schema.field(index).name
            raise ArrowFormatError(
                f"column {name!r} holds nulls but template field {field.name!r} is not nullable"
            )
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
    try:
        values = value_col.cast(pa.float64())
    except pa.ArrowInvalid as exc:
        raise ArrowFormatError(f"the value column does not convert exactly to float64: {exc}") from None
    times = time_col.to_numpy()
    values = values.to_numpy()
    return np.asarray(times, dtype=np.int64), np.asarray(values, dtype=np.float64)
