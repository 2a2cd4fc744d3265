"""Turning the data a user hands to ``insert`` into sorted numpy batches.

Accepted forms: a pyarrow Table or RecordBatch, a pandas DataFrame or Series, a pair of
arrays ``(times, values)``, or a sequence of ``(time, value)`` pairs. Everything is checked
before the first byte is sent, so a bad point never leaves half an insert behind.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from pingthings.timeseries._timeargs import to_ns
from pingthings.timeseries.exceptions import BadValue, InvalidTimeRange
from pingthings.wire.limits import INSERT_BATCH_SIZE, MIN_TIME, TIME_LIMIT
from pingthings.wire.point_checks import all_finite, in_order

#: Merge policy names and their wire values (v5api.MergePolicy).
MERGE_POLICIES: dict[str, int] = {"never": 0, "equal": 1, "retain": 2, "replace": 3}


def merge_policy_value(merge: Any) -> int:
    """The wire value of a merge policy given by name (``never``, ``equal``, ``retain``, ``replace``)."""
    if isinstance(merge, str):
        key = merge.strip().lower()
        if key in MERGE_POLICIES:
            return MERGE_POLICIES[key]
    elif hasattr(merge, "name") and isinstance(merge.name, str) and merge.name.lower() in MERGE_POLICIES:
        return MERGE_POLICIES[merge.name.lower()]  # a MergePolicy enum member
    raise ValueError(f"merge must be one of {', '.join(repr(k) for k in MERGE_POLICIES)}; got {merge!r}")


# --------------------------------------------------------------------------------------- columns
def _times_from_numpy(arr: np.ndarray) -> np.ndarray:
    if arr.ndim != 1:
        raise ValueError(f"times must be one-dimensional, got shape {arr.shape}")
    kind = arr.dtype.kind
    if kind == "M":
        if np.isnat(arr).any():
            raise ValueError("times contain NaT")
        return arr.astype("datetime64[ns]").view(np.int64)
    if kind in "iu":
        if kind == "u" and arr.size and arr.max() > np.iinfo(np.int64).max:
            raise ValueError("times do not fit in signed 64-bit nanoseconds")
        return arr.astype(np.int64, copy=False)
    if kind == "f":
        if not np.isfinite(arr).all() or (arr != np.floor(arr)).any():
            raise ValueError("float times must be whole numbers of nanoseconds")
        return arr.astype(np.int64)
    if kind == "O":
        return np.fromiter((to_ns(t, "time") for t in arr), dtype=np.int64, count=arr.size)
    raise TypeError(f"times of dtype {arr.dtype} are not supported (use int64 ns or datetime64)")


def _values_from_numpy(arr: np.ndarray) -> np.ndarray:
    if arr.ndim != 1:
        raise ValueError(f"values must be one-dimensional, got shape {arr.shape}")
    if arr.dtype.kind not in "iufb":
        try:
            return arr.astype(np.float64)
        except (TypeError, ValueError):
            raise TypeError(f"values of dtype {arr.dtype} are not numbers") from None
    return arr.astype(np.float64, copy=False)


def _arrow_column_to_numpy(col: pa.ChunkedArray | pa.Array, what: str) -> np.ndarray:
    if col.null_count:
        raise ValueError(f"{what} contain {col.null_count} null(s)")
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    typ = col.type
    try:
        if pa.types.is_date(typ):
            col = col.cast(pa.timestamp("ns"))
        elif pa.types.is_timestamp(typ) and typ.unit != "ns":
            col = col.cast(pa.timestamp("ns", tz=typ.tz))
    except pa.ArrowInvalid as exc:
        raise ValueError(f"{what} cannot be converted to nanoseconds: {exc}") from None
    if pa.types.is_timestamp(col.type):
        return col.view(pa.int64()).to_numpy(zero_copy_only=False)
    return col.to_numpy(zero_copy_only=False)


def _pick_columns(names: Sequence[str]) -> tuple[int, int]:
    if "time" in names and "value" in names:
        return list(names).index("time"), list(names).index("value")
    if len(names) < 2:
        raise ValueError(f"insert needs a time and a value column, got columns {list(names)}")
    return 0, 1


def to_columns(data: Any) -> tuple[np.ndarray, np.ndarray]:
    """Convert insert data to ``(int64 times, float64 values)`` numpy arrays (not yet checked)."""
    if isinstance(data, pa.RecordBatch):
        data = pa.Table.from_batches([data])
    if isinstance(data, pa.Table):
        ti, vi = _pick_columns(data.column_names)
        times = _times_from_numpy(_arrow_column_to_numpy(data.column(ti), "times"))
        values = _values_from_numpy(_arrow_column_to_numpy(data.column(vi), "values"))
        return times, values
    if type(data) is tuple and len(data) == 2 and all(type(a) is np.ndarray for a in data):
        return _times_from_numpy(data[0]), _values_from_numpy(data[1])  # the usual form, first
    # Data can be a pandas object only if pandas was imported: never import it here (0.4 s).
    pd = sys.modules.get("pandas")
    if pd is not None and isinstance(data, pd.DataFrame):
        cols = [str(c) for c in data.columns]
        if "time" not in cols and isinstance(data.index, pd.DatetimeIndex) and len(cols) >= 1:
            col = data["value"] if "value" in cols else data.iloc[:, 0]
            return _times_from_index(data.index), _values_from_numpy(col.to_numpy())
        ti, vi = _pick_columns(cols)
        times = _times_from_series(data.iloc[:, ti])
        return times, _values_from_numpy(data.iloc[:, vi].to_numpy())
    if pd is not None and isinstance(data, pd.Series):
        if not isinstance(data.index, pd.DatetimeIndex) and data.index.dtype.kind not in "iu":
            raise TypeError("a pandas Series to insert needs a DatetimeIndex or an integer ns index")
        times = (
            _times_from_index(data.index)
            if isinstance(data.index, pd.DatetimeIndex)
            else data.index.to_numpy().astype(np.int64)
        )
        return times, _values_from_numpy(data.to_numpy())
    if isinstance(data, np.ndarray) and data.ndim == 2 and data.shape[1] == 2:
        return _times_from_numpy(data[:, 0]), _values_from_numpy(data[:, 1])
    if (
        isinstance(data, tuple)
        and len(data) == 2
        and all(isinstance(a, np.ndarray | pa.Array | pa.ChunkedArray) or _is_series(a) for a in data)
    ):
        t, v = data
        arrow = pa.Array | pa.ChunkedArray
        t = _arrow_column_to_numpy(t, "times") if isinstance(t, arrow) else np.asarray(t)
        v = _arrow_column_to_numpy(v, "values") if isinstance(v, arrow) else np.asarray(v)
        return _times_from_numpy(t), _values_from_numpy(v)
    if isinstance(data, Sequence | Iterator) and not isinstance(data, str | bytes):
        return _pairs_to_columns(list(data))
    raise TypeError(
        "insert data must be a pyarrow Table, a pandas DataFrame/Series, a (times, values) pair of arrays "
        f"or a sequence of (time, value) pairs; got {type(data).__name__}"
    )


def _is_series(obj: Any) -> bool:
    return type(obj).__name__ == "Series" and hasattr(obj, "to_numpy")


def _times_from_index(index: Any) -> np.ndarray:
    if getattr(index, "tz", None) is not None:
        index = index.tz_convert("UTC").tz_localize(None)
    return _times_from_numpy(index.to_numpy().astype("datetime64[ns]"))


def _times_from_series(series: Any) -> np.ndarray:
    dtype = series.dtype
    if getattr(dtype, "tz", None) is not None:
        series = series.dt.tz_convert("UTC").dt.tz_localize(None)
    return _times_from_numpy(series.to_numpy())


def _pairs_to_columns(pairs: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    n = len(pairs)
    times = np.empty(n, dtype=np.int64)
    values = np.empty(n, dtype=np.float64)
    for i, pair in enumerate(pairs):
        try:
            t, v = pair
        except (TypeError, ValueError):
            raise ValueError(f"item {i} of the insert data is not a (time, value) pair: {pair!r}") from None
        times[i] = t if isinstance(t, int) and not isinstance(t, bool) else to_ns(t, f"time of item {i}")
        try:
            values[i] = v
        except (TypeError, ValueError):
            raise TypeError(f"value of item {i} is not a number: {v!r}") from None
    return times, values


# --------------------------------------------------------------------------------------- checks
def check_columns(times: np.ndarray, values: np.ndarray, ordered: bool = False) -> None:
    """Reject data the server would refuse, before anything is sent.

    ``ordered``: the times are known to be sorted, so their ends are their extremes.

    Raises
    ------
    ValueError
        Unequal lengths; :class:`BadValue` for NaN/infinite values and :class:`InvalidTimeRange`
        for times outside the time axis (both are ``ValueError`` subclasses).
    """
    if times.shape != values.shape:
        raise ValueError(f"times and values differ in length ({times.size} vs {values.size})")
    if not all_finite(values):
        i = int(np.argmin(np.isfinite(values)))
        kind = "NaN" if np.isnan(values[i]) else "an infinite value"
        raise BadValue(
            f"insert data contains {kind} at row {i} (time {int(times[i])}); only finite values can be stored"
        )
    if times.size:
        lo, hi = (times.item(0), times.item(-1)) if ordered else (int(times.min()), int(times.max()))
        if lo < MIN_TIME or hi >= TIME_LIMIT - 1:
            bad = lo if lo < MIN_TIME else hi
            raise InvalidTimeRange(
                f"insert data has a time {bad} outside the storable range [{MIN_TIME}, {TIME_LIMIT - 1})"
            )


def prepare(data: Any) -> tuple[np.ndarray, np.ndarray]:
    """Convert and check insert data; returns contiguous arrays sorted by time (stable)."""
    times, values = to_columns(data)
    ordered = times.ndim != 1 or in_order(times)
    check_columns(times, values, ordered)  # rows named in its errors are the caller's rows
    if not ordered:
        order = np.argsort(times, kind="stable")
        times, values = times[order], values[order]
    return np.ascontiguousarray(times), np.ascontiguousarray(values)


def batch_bounds(times: np.ndarray, batch_size: int = INSERT_BATCH_SIZE) -> list[tuple[int, int]]:
    """Split sorted ``times`` into ``[lo, hi)`` slices of about ``batch_size`` rows.

    A run of equal timestamps is never cut, so batches cover disjoint time ranges and can be sent
    concurrently without changing what a merge policy keeps.
    """
    n = int(times.size)
    bounds: list[tuple[int, int]] = []
    lo = 0
    while lo < n:
        hi = min(lo + batch_size, n)
        if hi < n and times[hi - 1] == times[hi]:
            hi = int(np.searchsorted(times, times[hi], side="right"))
        bounds.append((lo, hi))
        lo = hi
    return bounds
