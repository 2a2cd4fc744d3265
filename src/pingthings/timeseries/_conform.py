"""Cast a result table to the schema the caller asked for, cheaply in the common case.

Window statistics arrive as float64 and are returned, by default, with float32 min/mean/max/stddev
(:data:`~pingthings.timeseries.constants.STAT_F32_SCHEMA`). ``pyarrow.Table.cast`` dispatches a compute
kernel per column, and that fixed cost dominated small results: on a query of ~1,900 windows it took
~0.6 ms of the client's ~1.4 ms of CPU. When every column either already has its target type or is a
float column without nulls going to another float type, the columns are converted with numpy
(``astype``: IEEE round-to-nearest, as Arrow's own float cast; NaN, infinities, -0.0 and overflow to
infinity come out the same) and assembled without a kernel. Anything else goes through
``Table.cast`` as before.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from pingthings.wire.arrow import array_viewing

__all__ = ["conform"]


_FLOATS = {pa.float16(): np.float16, pa.float32(): np.float32, pa.float64(): np.float64}
"""numpy's type for each Arrow float type (``DataType.to_pandas_dtype`` would import pandas)."""


def _view(chunk: pa.Array) -> np.ndarray:
    """The values of a float array without nulls, viewed in place (``to_numpy`` imports pandas)."""
    dtype = np.dtype(_FLOATS[chunk.type])
    data = chunk.buffers()[1]
    return np.frombuffer(data, dtype=dtype, count=len(chunk), offset=chunk.offset * dtype.itemsize)


def _float_column(column: pa.ChunkedArray, target: pa.DataType) -> pa.Array | None:
    """``column`` as ``target`` (both floating point, no nulls) through numpy, or None if not eligible."""
    if not (pa.types.is_floating(column.type) and pa.types.is_floating(target)) or column.null_count:
        return None
    if column.num_chunks == 1:
        values = _view(column.chunk(0))
    elif column.num_chunks == 0:
        values = np.empty(0, dtype=_FLOATS[column.type])
    else:
        values = np.concatenate([_view(chunk) for chunk in column.chunks])
    with np.errstate(over="ignore"):  # a finite value too large becomes infinity, as in Arrow, silently
        converted = values.astype(_FLOATS[target], copy=False)
    return array_viewing(np.ascontiguousarray(converted))  # not pa.array: it imports pandas (0.4 s)


def conform(table: pa.Table, schema: pa.Schema | None) -> pa.Table:
    """``table`` cast to ``schema`` (returned as is when ``schema`` is None or already matches).

    Parameters
    ----------
    table
        A result table.
    schema
        The schema asked for: same column names in the same order, types castable.

    Returns
    -------
    pyarrow.Table
        The same rows with ``schema``'s types (and field metadata).
    """
    if schema is None or table.schema.equals(schema):
        return table
    if table.schema.names != schema.names:
        return table.cast(schema)
    arrays: list[pa.Array | pa.ChunkedArray] = []
    for column, field in zip(table.columns, schema, strict=True):
        if column.type.equals(field.type):
            arrays.append(column)
            continue
        converted = _float_column(column, field.type)
        if converted is None:
            return table.cast(schema)
        arrays.append(converted)
    return pa.Table.from_arrays(arrays, schema=schema)
