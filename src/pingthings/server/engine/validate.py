"""Argument checks shared by the engine's methods; each failure is a ServerError with a clear message."""

from __future__ import annotations

import operator
import uuid as uuid_mod
from typing import Any

import numpy as np

from pingthings.server.errors import BadValue, InvalidPointWidth, InvalidTimeRange, WrongArgs
from pingthings.wire.limits import MAX_POINT_WIDTH, MIN_TIME, TIME_LIMIT
from pingthings.wire.point_checks import all_finite


def as_uuid(value: Any) -> bytes:
    """A stream id as 16 bytes (``uuid.UUID`` is accepted too)."""
    if isinstance(value, uuid_mod.UUID):
        return value.bytes
    if isinstance(value, bytes | bytearray | memoryview) and len(value) == 16:
        return bytes(value)
    raise WrongArgs(f"a stream uuid must be 16 bytes, got {value!r:.60}")


def as_int(value: Any, name: str) -> int:
    """An integer argument (Python or numpy integer)."""
    try:
        return operator.index(value)
    except TypeError:
        raise WrongArgs(f"{name} must be an integer, got {type(value).__name__}") from None


def check_range(start: Any, end: Any) -> tuple[int, int]:
    """A query or delete range: ``MIN_TIME <= start < end < TIME_LIMIT``."""
    lo = as_int(start, "start")
    hi = as_int(end, "end")
    if lo < MIN_TIME or hi >= TIME_LIMIT:
        raise InvalidTimeRange(
            f"time range out of bounds: [{lo}, {hi}) must lie within [{MIN_TIME}, {TIME_LIMIT})"
        )
    if lo >= hi:
        raise InvalidTimeRange(f"start time >= end time ({lo} >= {hi})")
    return lo, hi


def check_point_width(value: Any, name: str = "point width", upper: int = MAX_POINT_WIDTH) -> int:
    """A point width / resolution in ``0..upper``."""
    pw = as_int(value, name)
    if not 0 <= pw <= upper:
        raise InvalidPointWidth(f"{name} {pw} is outside 0..{upper}")
    return pw


def as_points(times: Any, values: Any) -> tuple[np.ndarray, np.ndarray]:
    """Insert input as contiguous int64 times and float64 values of equal length."""
    t = np.asarray(times)
    v = np.asarray(values)
    if t.ndim != 1 or v.ndim != 1:
        raise WrongArgs(f"times and values must be one-dimensional, got shapes {t.shape} and {v.shape}")
    if t.size != v.size:
        raise WrongArgs(f"times and values differ in length ({t.size} vs {v.size})")
    if t.size == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
    if t.dtype.kind not in "iu":
        raise WrongArgs(f"times must be integers (ns since the epoch), got dtype {t.dtype}")
    if v.dtype.kind not in "fiu":
        raise WrongArgs(f"values must be real numbers, got dtype {v.dtype}")
    if t.dtype.kind == "u" and int(t.max()) >= TIME_LIMIT:
        raise InvalidTimeRange("insert contains points outside valid time interval")
    return np.ascontiguousarray(t, dtype=np.int64), np.ascontiguousarray(v, dtype=np.float64)


def round_times(t: np.ndarray, bits: Any) -> np.ndarray:
    """Round each time to the nearest multiple of ``2**bits`` (ties upwards)."""
    b = as_int(bits, "round_bits")
    if not 0 <= b <= 62:
        raise InvalidPointWidth(f"rounding bits {b} is outside 0..62")
    if b == 0 or t.size == 0:
        return t
    # Anything at or above 2**62 stays invalid after rounding; rejecting it first avoids overflow.
    if int(t.max()) >= 1 << 62:
        raise InvalidTimeRange("insert contains points outside valid time interval")
    step = 1 << b
    floor = t & ~(step - 1)
    return floor + np.where(t - floor >= step >> 1, step, 0)


def check_insert(t: np.ndarray, v: np.ndarray) -> None:
    """Every time in ``[MIN_TIME, TIME_LIMIT - 1)`` and every value finite."""
    if t.size == 0:
        return
    if int(t.min()) < MIN_TIME or int(t.max()) >= TIME_LIMIT - 1:
        raise InvalidTimeRange("insert contains points outside valid time interval")
    check_values(v)


def check_values(v: np.ndarray) -> None:
    """Every value finite (BadValue for NaN first, then for Inf)."""
    if not all_finite(v):
        if np.isnan(v).any():
            raise BadValue("insert contains NaN values")
        raise BadValue("insert contains Inf values")


def check_sorted_times(t: np.ndarray) -> None:
    """Every time of a sorted batch in ``[MIN_TIME, TIME_LIMIT - 1)``: its ends are."""
    if t.size and (t.item(0) < MIN_TIME or t.item(-1) >= TIME_LIMIT - 1):
        raise InvalidTimeRange("insert contains points outside valid time interval")
