"""Client-side time alignment of several streams, for servers without ArrowMultiValues.

Same semantics as the server's ArrowMultiValues: with a snapping period ``P`` every time moves to
the nearest multiple of ``P`` (grid anchored at the epoch, ties go up) and only grid times in
``[start, end)`` are kept; each stream keeps one point per time (the last one); streams are
outer-joined on time and a missing value is NaN.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

import numpy as np
import pyarrow as pa

TIME_TYPE = pa.timestamp("ns", tz="UTC")


def snap(times: np.ndarray, period: int) -> np.ndarray:
    """Nearest multiple of ``period`` (ties up), computed without int64 overflow."""
    base = (times // period) * period
    rem = times - base
    return base + np.where(rem >= period - rem, period, 0).astype(np.int64)


def _last_per_time(times: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if times.size == 0:
        return times, values
    order = np.argsort(times, kind="stable")
    times, values = times[order], values[order]
    keep = np.ones(times.size, dtype=bool)
    keep[:-1] = times[1:] != times[:-1]
    return times[keep], values[keep]


def aligned_schema(uuids: Sequence[UUID]) -> pa.Schema:
    """``time`` plus one float64 column per stream, named ``str(uuid)``."""
    return pa.schema(
        [pa.field("time", TIME_TYPE, nullable=False)]
        + [pa.field(str(u), pa.float64(), nullable=False) for u in uuids]
    )


def align(
    uuids: Sequence[UUID],
    series: Sequence[tuple[np.ndarray, np.ndarray]],
    start: int,
    end: int,
    period: int,
) -> pa.Table:
    """Outer-join ``(times, values)`` series on (optionally snapped) time into one Table."""
    prepared = []
    for times, values in series:
        times = np.asarray(times, dtype=np.int64)
        values = np.asarray(values, dtype=np.float64)
        if period:
            times = snap(times, period)
        keep = (times >= start) & (times < end)
        prepared.append(_last_per_time(times[keep], values[keep]))
    all_times = np.unique(np.concatenate([t for t, _ in prepared])) if prepared else np.empty(0, np.int64)
    columns = []
    for times, values in prepared:
        column = np.full(all_times.size, np.nan)
        column[np.searchsorted(all_times, times)] = values
        columns.append(pa.array(column))
    time_array = pa.array(all_times.astype(np.int64, copy=False)).view(TIME_TYPE)
    return pa.Table.from_arrays([time_array, *columns], schema=aligned_schema(uuids))
