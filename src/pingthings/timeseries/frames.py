"""Turning the per-stream Tables of a multi-stream query into one table or DataFrame.

A stream set's reads return one pyarrow Table per stream. The helpers here combine them in the
two shapes analysis code wants:

* **wide**: one row per time, ``time`` plus one column per stream (statistics: one column per
  stream and statistic, named ``"<label>/<stat>"``), NaN where a stream has no value;
* **long**: one row per point, ``time``, ``stream`` (dictionary-encoded label) and the value
  columns of the per-stream tables.

Then :func:`to_pandas`, :func:`to_polars` and :func:`to_numpy` convert, without copying the value
columns where Arrow allows it. pandas and polars are optional: install them with
``pip install 'pingthings[pandas]'`` or ``'pingthings[polars]'``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pyarrow as pa

if TYPE_CHECKING:
    import pandas
    import polars

__all__ = [
    "FORMS",
    "long_table",
    "rename_wide",
    "to_numpy",
    "to_pandas",
    "to_polars",
    "wide_stat_table",
]

Form = Literal["wide", "long"]
FORMS: tuple[str, ...] = ("wide", "long")
"""The table shapes the ``form=`` arguments accept."""

STAT_COLUMNS: tuple[str, ...] = ("min", "mean", "max", "count", "stddev")
TIME_TYPE = pa.timestamp("ns", tz="UTC")


def check_form(form: Any) -> Form:
    """Return ``form`` if it is ``"wide"`` or ``"long"``, else raise ValueError naming it."""
    if form not in FORMS:
        raise ValueError(f"form must be 'wide' or 'long', not {form!r}")
    return form  # type: ignore[no-any-return]


def _time_ns(table: pa.Table) -> np.ndarray:
    column = table.column("time").combine_chunks()
    return column.view(pa.int64()).to_numpy() if column.type != pa.int64() else column.to_numpy()


def rename_wide(table: pa.Table, labels: Sequence[str]) -> pa.Table:
    """A wide raw table (``time`` + one column per stream) with its value columns renamed.

    No data is copied: only the schema changes.
    """
    if table.num_columns != len(labels) + 1:
        raise ValueError(f"{len(labels)} labels for a table of {table.num_columns - 1} streams")
    return table.rename_columns(["time", *labels])


def wide_stat_table(tables: Sequence[pa.Table], labels: Sequence[str]) -> pa.Table:
    """Outer-join per-stream statistics tables on ``time``.

    Parameters
    ----------
    tables
        One statistics table per stream (``time``, ``min``, ``mean``, ``max``, ``count``,
        ``stddev``), each sorted by time with distinct times.
    labels
        The label of each stream; columns are named ``"<label>/<stat>"``.

    Returns
    -------
    pyarrow.Table
        ``time`` plus five columns per stream. When every stream has the same windows the
        columns are the streams' own arrays (no copy); otherwise missing windows are NaN
        (``count`` 0).
    """
    if len(tables) != len(labels):
        raise ValueError(f"{len(labels)} labels for {len(tables)} tables")
    times = [_time_ns(t) for t in tables]
    shared = bool(times) and all(np.array_equal(times[0], t) for t in times[1:])
    all_times = times[0] if shared else (np.unique(np.concatenate(times)) if times else np.empty(0, np.int64))
    names = ["time"]
    columns: list[Any] = [pa.array(all_times, type=pa.int64()).cast(TIME_TYPE)]
    for table, label, own_times in zip(tables, labels, times, strict=True):
        slots = None if shared else np.searchsorted(all_times, own_times)
        for stat in STAT_COLUMNS:
            names.append(f"{label}/{stat}")
            if slots is None:
                columns.append(table.column(stat))
                continue
            source = table.column(stat).to_numpy()
            filled = (
                np.zeros(all_times.size, np.uint64) if stat == "count" else np.full(all_times.size, np.nan)
            )
            filled[slots] = source
            columns.append(pa.array(filled))
    return pa.Table.from_arrays(columns, names=names)


def long_table(tables: Sequence[pa.Table], labels: Sequence[str]) -> pa.Table:
    """Stack per-stream tables into one long table with a ``stream`` column.

    Parameters
    ----------
    tables
        One table per stream, all with the same columns (raw or statistics).
    labels
        The label of each stream.

    Returns
    -------
    pyarrow.Table
        ``time``, ``stream`` (dictionary of the labels) and the remaining columns of the input
        tables, streams one after another in the given order. The value columns reuse the
        input buffers.
    """
    if len(tables) != len(labels):
        raise ValueError(f"{len(labels)} labels for {len(tables)} tables")
    if not tables:
        return pa.table(
            {"time": pa.array([], TIME_TYPE), "stream": pa.array([], pa.dictionary(pa.int32(), pa.string()))}
        )
    dictionary = pa.array(list(labels), pa.string())
    pieces = []
    for index, table in enumerate(tables):
        codes = pa.array(np.full(table.num_rows, index, np.int32))
        stream = pa.DictionaryArray.from_arrays(codes, dictionary)
        rest = [name for name in table.column_names if name != "time"]
        pieces.append(
            pa.Table.from_arrays(
                [table.column("time"), stream, *(table.column(n) for n in rest)],
                names=["time", "stream", *rest],
            )
        )
    first = pieces[0].schema
    return pa.concat_tables([p.cast(first) if p.schema != first else p for p in pieces])


def to_pandas(table: pa.Table, index: str | None = "time") -> pandas.DataFrame:
    """A pandas DataFrame of ``table``, indexed by ``index`` (None: a plain range index).

    Columns without nulls are not copied (each becomes its own read-only block); ``time`` becomes
    a ``datetime64[ns, UTC]`` column.

    Raises
    ------
    ImportError
        When pandas is not installed (``pip install 'pingthings[pandas]'``).
    """
    try:
        import pandas  # noqa: F401
    except ImportError as exc:  # pragma: no cover - exercised only without pandas
        raise ImportError("to_pandas needs pandas: pip install 'pingthings[pandas]'") from exc
    frame = table.to_pandas(split_blocks=True, self_destruct=False)
    if index is not None:
        frame = frame.set_index(index)
    return frame


def to_polars(table: pa.Table) -> polars.DataFrame:
    """A polars DataFrame of ``table`` (numeric columns are not copied).

    Raises
    ------
    ImportError
        When polars is not installed (``pip install 'pingthings[polars]'``).
    """
    try:
        import polars
    except ImportError as exc:
        raise ImportError("to_polars needs polars: pip install 'pingthings[polars]'") from exc
    result = polars.from_arrow(table, rechunk=False)
    assert isinstance(result, polars.DataFrame)
    return result


def to_numpy(table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """``(times, values)`` of a wide table: int64 ns times and a 2-D float64 array.

    ``values[i, j]`` is stream ``j``'s value at ``times[i]`` (NaN where it has none). The times
    are a view of the table's buffer; the 2-D array is one copy (numpy needs one block).
    """
    times = _time_ns(table)
    names = [n for n in table.column_names if n != "time"]
    values = np.empty((table.num_rows, len(names)), dtype=np.float64)
    for j, name in enumerate(names):
        values[:, j] = table.column(name).to_numpy()
    return times, values
