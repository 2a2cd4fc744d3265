"""Arrow tables in and out of the Arrow RPCs, over the shared helpers of ``pingthings.wire.arrow``.

This module only adapts them to the server: StatWindows slices become tables, and malformed
client input (IPC bytes, templates, insert tables) becomes WrongArgs (421).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from pingthings.server.errors import WrongArgs
from pingthings.wire import arrow as wire_arrow
from pingthings.wire import arrow_insert

TIME_TYPE = wire_arrow.TIME_TYPE
RAW_SCHEMA = wire_arrow.RAW_SCHEMA
STAT_SCHEMA = wire_arrow.STAT_SCHEMA

ipc_bytes = wire_arrow.table_to_ipc
raw_table = wire_arrow.raw_table


time_array = wire_arrow.time_array


class WindowSlice:
    """A zero-copy view of ``windows[start:stop]`` exposing the six StatPoint arrays."""

    def __init__(self, windows: Any, start: int = 0, stop: int | None = None) -> None:
        s = slice(start, stop)
        self.time = windows.time[s]
        self.min = windows.min[s]
        self.mean = windows.mean[s]
        self.max = windows.max[s]
        self.count = windows.count[s]
        self.stddev = windows.stddev[s]


def stat_table(windows: Any, start: int = 0, stop: int | None = None) -> pa.Table:
    """A table in :data:`STAT_SCHEMA` from an engine ``StatWindows`` slice."""
    return wire_arrow.stat_table(WindowSlice(windows, start, stop))


def read_template(data: bytes) -> pa.Schema | None:
    """The schema held by a template IPC stream, or None when no template was sent."""
    if not data:
        return None
    try:
        return wire_arrow.ipc_to_schema(data)
    except ValueError as exc:  # the wire helpers raise ValueError subclasses
        raise WrongArgs(f"templateBytes: {exc}") from None


def cast_to_template(table: pa.Table, template: pa.Schema | None) -> pa.Table:
    """Rename and cast ``table``'s columns, by position, to ``template`` (None: unchanged)."""
    if template is None:
        return table
    try:
        return wire_arrow.apply_template(table, template)
    except ValueError as exc:
        raise WrongArgs(f"template schema does not fit the result: {exc}") from None


def read_insert_table(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Decode ArrowInsert's payload into (int64 ns times, float64 values).

    Columns named ``time`` and ``value`` are used when present, else the first two by position.
    A small payload framed as this package's clients write it is read without pyarrow (see
    :mod:`pingthings.wire.arrow_insert`).
    """
    framed = arrow_insert.decode(data)
    if framed is not None:
        return framed
    try:
        table = wire_arrow.ipc_to_table(data)
    except ValueError as exc:  # the wire helpers raise ValueError subclasses
        raise WrongArgs(f"arrowBytes: {exc}") from None
    if "time" in table.column_names and "value" in table.column_names and table.num_columns > 2:
        table = table.select(["time", "value"])
    try:
        times, values = wire_arrow.table_to_points(table)
    except ValueError as exc:
        raise WrongArgs(f"Arrow insert: {exc}") from None
    return np.ascontiguousarray(times, dtype=np.int64), np.ascontiguousarray(values, dtype=np.float64)
