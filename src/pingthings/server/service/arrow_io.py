"""Arrow tables in and out of the Arrow RPCs: schemas, IPC streams and template casting."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from pingthings.server.errors import WrongArgs

TIME_TYPE = pa.timestamp("ns", tz="UTC")
#: Default schema of ArrowRawValues replies and of Subscribe pushes.
RAW_SCHEMA = pa.schema(
    [pa.field("time", TIME_TYPE, nullable=False), pa.field("value", pa.float64(), nullable=False)]
)
#: Schema of ArrowAlignedWindows / ArrowWindows replies (the order the Python client checks).
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


def ipc_bytes(table: pa.Table) -> bytes:
    """Serialise ``table`` as one complete Arrow IPC stream (schema, batches, end marker)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def raw_table(times: np.ndarray, values: np.ndarray) -> pa.Table:
    """A (time, value) table in :data:`RAW_SCHEMA`, built without per-point Python objects."""
    return pa.Table.from_arrays(
        [
            pa.array(np.asarray(times, dtype=np.int64)).view(TIME_TYPE)
            if len(times)
            else pa.array([], TIME_TYPE),
            pa.array(np.asarray(values, dtype=np.float64)),
        ],
        schema=RAW_SCHEMA,
    )


def stat_table(windows: object, start: int = 0, stop: int | None = None) -> pa.Table:
    """A table in :data:`STAT_SCHEMA` from an engine ``StatWindows`` slice."""
    s = slice(start, stop)
    w = windows
    times = np.asarray(w.time[s], dtype=np.int64)  # type: ignore[attr-defined]
    return pa.Table.from_arrays(
        [
            pa.array(times).view(TIME_TYPE) if len(times) else pa.array([], TIME_TYPE),
            pa.array(np.asarray(w.min[s], dtype=np.float64)),  # type: ignore[attr-defined]
            pa.array(np.asarray(w.mean[s], dtype=np.float64)),  # type: ignore[attr-defined]
            pa.array(np.asarray(w.max[s], dtype=np.float64)),  # type: ignore[attr-defined]
            pa.array(np.asarray(w.count[s], dtype=np.uint64)),  # type: ignore[attr-defined]
            pa.array(np.asarray(w.stddev[s], dtype=np.float64)),  # type: ignore[attr-defined]
        ],
        schema=STAT_SCHEMA,
    )


def read_template(data: bytes) -> pa.Schema | None:
    """The schema held by a template IPC stream, or None when no template was sent."""
    if not data:
        return None
    try:
        return pa.ipc.open_stream(pa.py_buffer(data)).schema
    except (pa.ArrowInvalid, OSError) as exc:
        raise WrongArgs(f"templateBytes is not an Arrow IPC stream: {exc}") from None


def cast_to_template(table: pa.Table, template: pa.Schema | None) -> pa.Table:
    """Rename and cast ``table``'s columns, by position, to ``template``."""
    if template is None:
        return table
    if len(template) != table.num_columns:
        raise WrongArgs(f"template schema has {len(template)} fields, the result has {table.num_columns}")
    columns = []
    for column, field in zip(table.columns, template, strict=True):
        if pa.types.is_timestamp(column.type) and pa.types.is_integer(field.type):
            column = column.cast(pa.int64())
        try:
            columns.append(column.cast(field.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise WrongArgs(f"cannot cast column {field.name!r} to {field.type}: {exc}") from None
    return pa.Table.from_arrays(columns, schema=template)


def read_insert_table(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Decode ArrowInsert's payload into (int64 ns times, float64 values)."""
    try:
        table = pa.ipc.open_stream(pa.py_buffer(data)).read_all()
    except (pa.ArrowInvalid, OSError) as exc:
        raise WrongArgs(f"arrowBytes is not an Arrow IPC stream: {exc}") from None
    names = table.column_names
    if "time" in names and "value" in names:
        time_col, value_col = table.column("time"), table.column("value")
    elif table.num_columns == 2:
        time_col, value_col = table.column(0), table.column(1)
    else:
        raise WrongArgs(f"an Arrow insert needs 'time' and 'value' columns, got {names}")
    if time_col.null_count or value_col.null_count:
        raise WrongArgs("an Arrow insert must not contain null times or values")
    try:
        if pa.types.is_timestamp(time_col.type):
            time_col = time_col.cast(pa.timestamp("ns", tz=time_col.type.tz)).cast(pa.int64())
        times = time_col.cast(pa.int64()).to_numpy()
        values = value_col.cast(pa.float64()).to_numpy()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise WrongArgs(f"Arrow insert columns have unusable types: {exc}") from None
    return np.ascontiguousarray(times, dtype=np.int64), np.ascontiguousarray(values, dtype=np.float64)
