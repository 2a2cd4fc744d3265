"""Checking and converting the time, version and width arguments of stream methods.

Every public method funnels its arguments through here so that bad input fails early with an
error that names the argument, never deep inside the wire encoder.
"""

from __future__ import annotations

import datetime as _dt
import operator
from typing import Any

import numpy as np

_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1
_UINT64_MAX = (1 << 64) - 1


def _as_int(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, got bool")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}") from None


def to_ns(value: Any, name: str = "time") -> int:
    """Convert a time argument to int nanoseconds since the epoch (UTC).

    Accepts ``int`` nanoseconds, ``datetime`` (naive means UTC), ``numpy.datetime64``,
    ``pandas.Timestamp`` and anything else ``pingthings.timeseries.utils.timez.to_nanoseconds``
    understands.

    Raises
    ------
    TypeError, ValueError
        When the value is not a time; the message names ``name``.
    """
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a time (int ns, datetime, numpy.datetime64), got bool")
    if isinstance(value, int | np.integer):
        ns = int(value)
    else:
        if value is None:
            raise TypeError(f"{name} must be a time (int ns, datetime, numpy.datetime64), got None")
        if isinstance(value, np.datetime64) and np.isnat(value):
            raise ValueError(f"{name} is NaT, not a time")
        from pingthings.timeseries.utils.timez import to_nanoseconds

        try:
            converted = to_nanoseconds(value)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{name}: {exc}") from None
        if converted is None:
            raise TypeError(f"{name} must be a time, got {value!r}")
        ns = int(converted)
    if not _INT64_MIN <= ns <= _INT64_MAX:
        raise ValueError(f"{name}={ns} does not fit in a signed 64-bit nanosecond timestamp")
    return ns


def to_version(value: Any, name: str = "version") -> int:
    """Check a data version (``0`` or ``None`` means latest)."""
    if value is None:
        return 0
    v = _as_int(value, name)
    if not 0 <= v <= _UINT64_MAX:
        raise ValueError(f"{name} must be >= 0 (0 means latest), got {v}")
    return v


def to_point_width(value: Any, name: str = "point_width") -> int:
    """Check a point width: an integer 0..63 (a window of ``2**point_width`` ns)."""
    pw = _as_int(value, name)
    if not 0 <= pw <= 63:
        raise ValueError(f"{name} must be between 0 and 63, got {pw}")
    return pw


def to_width(value: Any, name: str = "width") -> int:
    """Check a window width: positive nanoseconds (``int``, ``timedelta`` or ``numpy.timedelta64``)."""
    if isinstance(value, _dt.timedelta):
        value = (value.days * 86_400 + value.seconds) * 1_000_000_000 + value.microseconds * 1_000
    elif isinstance(value, np.timedelta64):
        value = int(value.astype("timedelta64[ns]").astype(np.int64))
    w = _as_int(value, name)
    if not 0 < w < (1 << 63):
        raise ValueError(f"{name} must be a positive number of nanoseconds below 2**63, got {w}")
    return w


def to_resolution(value: Any, name: str = "resolution") -> int:
    """Check a ``changes`` resolution (log2 ns, 0..63)."""
    return to_point_width(value, name)


def window_kind(width: Any) -> tuple[str, int]:
    """How ``windowed_values`` answers a width: ``("aligned", point_width)`` or ``("precise", ns)``.

    A ``PW[i]`` point width, or a width in ns that is a power of two, is answered with aligned
    windows (from the server's precomputed statistics); any other width with precise windows.
    """
    from pingthings.timeseries.constants import _PW

    if isinstance(width, _PW):
        return "aligned", int(width)
    w = to_width(width)
    if w & (w - 1) == 0:
        return "aligned", w.bit_length() - 1
    return "precise", w
