"""Time snapping and outer joins for ArrowMultiValues."""

from __future__ import annotations

import numpy as np


def snap_times(times: np.ndarray, period: int) -> np.ndarray:
    """Move each time to the nearest multiple of ``period`` (ties go up), grid anchored at 0.

    Works in int64 without overflow: the remainder ``r`` is compared with ``period - r``.
    """
    times = np.asarray(times, dtype=np.int64)
    base = (times // period) * period
    remainder = times - base
    return base + np.where(remainder >= period - remainder, period, 0).astype(np.int64)


def last_per_time(times: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keep one point per distinct time (the last in input order); output sorted by time."""
    if len(times) == 0:
        return times, values
    if len(times) > 1 and bool(np.any(times[1:] < times[:-1])):  # engine output is already sorted
        order = np.argsort(times, kind="stable")
        times, values = times[order], values[order]
    keep = np.ones(len(times), dtype=bool)
    keep[:-1] = times[1:] != times[:-1]
    if keep.all():  # the usual case: no repeated time, nothing to drop (and nothing to copy)
        return times, values
    return times[keep], values[keep]


def outer_join(series: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Join several (sorted, distinct) time series on time; missing values become NaN.

    Returns the sorted union of times and one float64 column per input series.
    """
    if not series:
        return np.empty(0, np.int64), []
    if len(series) == 1:
        return series[0][0].astype(np.int64, copy=False), [np.asarray(series[0][1], dtype=np.float64)]
    first = series[0][0]
    if all(len(t) == len(first) and np.array_equal(t, first) for t, _ in series[1:]):
        # Streams sampled together (one device, one clock) share every time: nothing to merge.
        return first.astype(np.int64, copy=False), [np.asarray(v, dtype=np.float64) for _, v in series]
    all_times = np.concatenate([t for t, _ in series])
    all_times.sort(kind="stable")  # faster than np.unique's hashing for these nearly sorted inputs
    if len(all_times) > 1:
        all_times = all_times[np.r_[True, all_times[1:] != all_times[:-1]]]
    columns = []
    for times, values in series:
        column = np.full(len(all_times), np.nan)
        column[np.searchsorted(all_times, times)] = values
        columns.append(column)
    return all_times.astype(np.int64, copy=False), columns
