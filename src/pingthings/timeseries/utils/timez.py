"""Time helpers: everything in pingthings is an ``int`` of nanoseconds since the Unix epoch, UTC.

All conversions use integer arithmetic, so no value loses a nanosecond to float rounding
(a float holding 2026-era nanoseconds is only exact to about 256 ns).
"""

from __future__ import annotations

import math
import re
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

import numpy as np

from pingthings.timeseries.constants import _PW, MAX_POINT_WIDTH

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DATETIME64_NS: dict[str, int | Fraction] = {
    "W": 7 * 86_400 * 10**9,
    "D": 86_400 * 10**9,
    "h": 3_600 * 10**9,
    "m": 60 * 10**9,
    "s": 10**9,
    "ms": 10**6,
    "us": 10**3,
    "μs": 10**3,
    "ns": 1,
    "ps": Fraction(1, 10**3),
    "fs": Fraction(1, 10**6),
    "as": Fraction(1, 10**9),
}
_NS_PER = {
    "days": 86_400 * 10**9,
    "hours": 3_600 * 10**9,
    "minutes": 60 * 10**9,
    "seconds": 10**9,
    "milliseconds": 10**6,
    "microseconds": 10**3,
}
# ISO 8601 / RFC 3339 with up to 9 fraction digits, a "T" or a space, and an optional offset.
_ISO = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})"
    r"(?:[T ](?P<hms>\d{2}:\d{2}(?::\d{2})?)(?:[.,](?P<frac>\d{1,9}))?)?"
    r"\s*(?P<tz>Z|z|[+-]\d{2}:?\d{2})?$"
)


def currently_as_ns() -> int:
    """The current time in ns since the epoch (UTC)."""
    return time.time_ns()


def datetime_to_ns(dt: datetime) -> int:
    """Nanoseconds since the epoch of a datetime; a naive datetime is taken to be UTC.

    Parameters
    ----------
    dt
        The datetime to convert. Aware datetimes are converted to UTC first.
    """
    if not isinstance(dt, datetime):
        raise TypeError(f"datetime_to_ns takes a datetime, not {type(dt).__name__}")
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    delta = dt - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1_000


def ns_to_datetime(ns: int) -> datetime:
    """A UTC-aware datetime for ``ns`` nanoseconds since the epoch (sub-µs digits are truncated)."""
    ns = _as_int(ns, "ns")
    micros, _ = divmod(ns, 1_000)
    return _EPOCH + timedelta(microseconds=micros)


def ns_delta(
    days: float | Decimal = 0,
    hours: float | Decimal = 0,
    minutes: float | Decimal = 0,
    seconds: float | Decimal = 0,
    milliseconds: float | Decimal = 0,
    microseconds: float | Decimal = 0,
    nanoseconds: int = 0,
) -> int:
    """A duration in nanoseconds, like ``timedelta`` but exact to the nanosecond.

    Float arguments are read through their shortest decimal form (``0.1`` means one tenth), so
    ``ns_delta(seconds=0.1)`` is exactly 100_000_000.
    """
    if isinstance(nanoseconds, bool) or not isinstance(nanoseconds, int | np.integer):
        raise TypeError(f"nanoseconds must be an int, not {type(nanoseconds).__name__}")
    total = Decimal(int(nanoseconds))
    parts = {
        "days": days,
        "hours": hours,
        "minutes": minutes,
        "seconds": seconds,
        "milliseconds": milliseconds,
        "microseconds": microseconds,
    }
    for name, amount in parts.items():
        total += _decimal(amount, name) * _NS_PER[name]
    return int(total.to_integral_value())


def to_nanoseconds(val: Any) -> int:
    """Convert a time given in any common form to ns since the epoch.

    Accepts ``int`` (already ns), integral ``float``, ``datetime`` (naive = UTC), ``date`` (its
    midnight UTC), numpy ``datetime64`` of any unit, pandas ``Timestamp`` (keeping its ns), strings of
    digits (ns) and ISO 8601 / RFC 3339 strings with up to 9 fraction digits and an optional offset.

    Raises
    ------
    TypeError
        For a type that is not a time.
    ValueError
        For a string in no known format, NaT, or a float with a fraction of a nanosecond.
    """
    if isinstance(val, bool):
        raise TypeError("a bool is not a time")
    if isinstance(val, int | np.integer):
        return int(val)
    if isinstance(val, np.datetime64):
        return _datetime64_ns(val)
    pandas_ns = _pandas_timestamp_ns(val)
    if pandas_ns is not None:
        return pandas_ns
    if isinstance(val, datetime):
        return datetime_to_ns(val)
    if isinstance(val, date):
        return datetime_to_ns(datetime(val.year, val.month, val.day))
    if isinstance(val, float | np.floating):
        if not math.isfinite(val) or val != int(val):
            raise ValueError(f"a float time must be a whole number of ns, got {val!r}")
        return int(val)
    if isinstance(val, str):
        return _parse_string(val)
    raise TypeError(
        f"cannot read a time from {type(val).__name__}: give int ns, datetime, datetime64 or a string"
    )


def nearest_point_width(
    days: float | Decimal = 0,
    hours: float | Decimal = 0,
    minutes: float | Decimal = 0,
    seconds: float | Decimal = 0,
    milliseconds: float | Decimal = 0,
    microseconds: float | Decimal = 0,
    nanoseconds: int = 0,
    hertz: float | Decimal = 0,
) -> _PW:
    """The point width whose window (``2**pw`` ns) is nearest, on a log scale, to a duration.

    Give either a duration (any mix of the unit arguments) or a frequency in ``hertz``, whose
    period ``1/hertz`` is then used.

    Examples
    --------
    >>> int(nearest_point_width(seconds=1))
    30
    >>> int(nearest_point_width(hertz=120))
    23
    """
    if isinstance(nanoseconds, bool) or not isinstance(nanoseconds, int | np.integer):
        raise TypeError(f"nanoseconds must be an int, not {type(nanoseconds).__name__}")
    amounts = {
        "days": days,
        "hours": hours,
        "minutes": minutes,
        "seconds": seconds,
        "milliseconds": milliseconds,
        "microseconds": microseconds,
    }
    duration = Fraction(int(nanoseconds))
    for name, amount in amounts.items():
        duration += Fraction(_decimal(amount, name)) * _NS_PER[name]
    freq = Fraction(_decimal(hertz, "hertz"))
    if freq and duration:
        raise ValueError("give either a duration or hertz, not both")
    if freq:
        if freq < 0:
            raise ValueError(f"hertz must be positive, got {hertz}")
        period = 10**9 / freq
    else:
        if duration <= 0:
            raise ValueError("the duration must be positive (or give hertz)")
        period = duration
    return _PW(min(max(_round_log2(period), 0), MAX_POINT_WIDTH))


def _round_log2(x: Fraction) -> int:
    """``round(log2(x))`` for a positive rational, exactly (no float rounding at any magnitude).

    With ``k = floor(log2(x))`` the answer is ``k + 1`` when ``x >= 2**k * sqrt(2)``, that is when
    ``x**2 >= 2**(2k + 1)``; both sides are compared as exact rationals.
    """
    p, q = x.numerator, x.denominator
    k = p.bit_length() - q.bit_length()
    if Fraction(p, q) < Fraction(2) ** k:
        k -= 1
    return k + 1 if x * x >= Fraction(2) ** (2 * k + 1) else k


def _datetime64_ns(val: np.datetime64) -> int:
    """ns since the epoch of a datetime64 of any unit, in exact integer arithmetic (no wrap-around)."""
    if np.isnat(val):
        raise ValueError("NaT is not a time")
    unit, count = np.datetime_data(val.dtype)
    if unit in ("Y", "M", "generic"):
        if unit == "generic":
            raise ValueError(f"a datetime64 without a unit is not a time: {val!r}")
        val = val.astype("datetime64[D]")  # exact: months and years start on a day boundary
        unit, count = "D", 1
    ticks = int(val.astype(np.int64)) * count
    per_tick = _DATETIME64_NS[unit]
    return ticks * per_tick if isinstance(per_tick, int) else int(ticks * per_tick // 1)


def _decimal(amount: Any, name: str) -> Decimal:
    if isinstance(amount, bool):
        raise TypeError(f"{name} must be a number, not a bool")
    if isinstance(amount, Decimal):
        return amount
    if isinstance(amount, int | np.integer):
        return Decimal(int(amount))
    if isinstance(amount, float | np.floating):
        if not math.isfinite(amount):
            raise ValueError(f"{name} must be finite, got {amount}")
        return Decimal(repr(float(amount)))
    try:
        return Decimal(amount)
    except (InvalidOperation, TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {amount!r}") from None


def _as_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an int of nanoseconds, not {type(value).__name__}")
    return int(value)


def _pandas_timestamp_ns(val: Any) -> int | None:
    """ns of a pandas Timestamp without importing pandas unless the value is one."""
    cls = type(val)
    if cls.__module__.startswith("pandas") and cls.__name__ == "Timestamp":
        if val.tzinfo is None:
            val = val.tz_localize("UTC")
        return int(val.value) if str(getattr(val, "unit", "ns")) == "ns" else int(val.as_unit("ns").value)
    if cls.__module__.startswith("pandas") and cls.__name__ == "NaTType":
        raise ValueError("NaT is not a time")
    return None


def _parse_string(text: str) -> int:
    s = text.strip()
    if re.fullmatch(r"[+-]?\d+", s):
        return int(s)
    match = _ISO.match(s)
    if not match:
        raise ValueError(f"unsupported time string {text!r}: use RFC 3339, e.g. 2024-01-31T12:00:00.5Z")
    hms = match["hms"] or "00:00:00"
    if hms.count(":") == 1:
        hms += ":00"
    try:
        base = datetime.fromisoformat(f"{match['date']}T{hms}")
    except ValueError as exc:
        raise ValueError(f"invalid time string {text!r}: {exc}") from None
    ns = datetime_to_ns(base)
    frac = match["frac"]
    if frac:
        ns += int(frac.ljust(9, "0"))
    tz = match["tz"]
    if tz and tz not in ("Z", "z"):
        sign = 1 if tz[0] == "+" else -1
        digits = tz[1:].replace(":", "")
        offset = (int(digits[:2]) * 60 + int(digits[2:])) * 60 * 10**9
        ns -= sign * offset
    return ns


__all__ = [
    "currently_as_ns",
    "datetime_to_ns",
    "nearest_point_width",
    "ns_delta",
    "ns_to_datetime",
    "to_nanoseconds",
]
