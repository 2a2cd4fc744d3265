"""Static constants and Arrow schemas of the client.

``PW[i]`` is the point width of windows ``2**i`` ns long. Windowed queries whose start, end and width
line up with a point width are answered from the server's precomputed statistics without reading raw
points, so they are the fastest way to summarise long ranges.
"""

from __future__ import annotations

import pyarrow as pa

from pingthings.wire import arrow as _wire_arrow
from pingthings.wire import limits as _limits

#: Earliest time the server stores: -(16 << 56) ns (1933-06-20).
MINIMUM_TIME: int = _limits.MIN_TIME
#: Latest time a query may name: (48 << 56) - 1 ns (2079-08-08); it is exclusive as a range end.
MAXIMUM_TIME: int = _limits.TIME_LIMIT - 1
#: Largest point width a server accepts.
MAX_POINT_WIDTH: int = _limits.MAX_POINT_WIDTH
#: Points per Insert request; larger inserts are split into batches of this size.
INSERT_BATCH_SIZE: int = _limits.INSERT_BATCH_SIZE

_UNITS = (
    (86_400 * 365 * 10**9, "years"),
    (86_400 * 10**9, "days"),
    (3_600 * 10**9, "hours"),
    (60 * 10**9, "minutes"),
    (10**9, "seconds"),
    (10**6, "milliseconds"),
    (10**3, "microseconds"),
)


class _PW(int):
    """A point width: the log2 of a window's length in nanoseconds (0..63).

    It behaves as an ``int`` everywhere a point width is accepted and adds conversions.

    Examples
    --------
    >>> PW[30].nanoseconds
    1073741824
    >>> str(PW[30])
    'PW[30] ≈ 1.07 seconds'
    """

    def __new__(cls, value: int) -> _PW:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"a point width is an int, not {type(value).__name__}")
        if not 0 <= value <= _limits.MAX_POINT_WIDTH:
            raise ValueError(f"a point width must be between 0 and {_limits.MAX_POINT_WIDTH}, got {value}")
        return super().__new__(cls, value)

    @property
    def nanoseconds(self) -> int:
        """Window length in ns (``2**pw``)."""
        return 1 << int(self)

    @property
    def microseconds(self) -> float:
        """Window length in µs."""
        return self.nanoseconds / 1e3

    @property
    def milliseconds(self) -> float:
        """Window length in ms."""
        return self.nanoseconds / 1e6

    @property
    def seconds(self) -> float:
        """Window length in s."""
        return self.nanoseconds / 1e9

    @property
    def minutes(self) -> float:
        """Window length in minutes."""
        return self.nanoseconds / 60e9

    @property
    def hours(self) -> float:
        """Window length in hours."""
        return self.nanoseconds / 3600e9

    @property
    def days(self) -> float:
        """Window length in days."""
        return self.nanoseconds / 86400e9

    def __repr__(self) -> str:
        return f"PW[{int(self)}]"

    def __str__(self) -> str:
        ns = self.nanoseconds
        for size, name in _UNITS:
            if ns >= size:
                return f"PW[{int(self)}] ≈ {ns / size:.3g} {name}"
        return f"PW[{int(self)}] = {ns} nanosecond{'' if ns == 1 else 's'}"


#: Point widths 0..60: ``PW[i]`` is a window of ``2**i`` ns.
PW: tuple[_PW, ...] = tuple(_PW(i) for i in range(61))

#: Raw values: ``time`` (timestamp[ns, UTC]) and ``value`` (float64).
RAW_VALUES_SCHEMA: pa.Schema = _wire_arrow.RAW_SCHEMA

#: Statistical windows with float64 statistics (what the server computes and sends).
STAT_F64_SCHEMA: pa.Schema = _wire_arrow.STAT_SCHEMA

#: Statistical windows with float32 min/mean/max/stddev: half the memory, the client's default.
STAT_F32_SCHEMA: pa.Schema = pa.schema(
    [
        pa.field("time", _wire_arrow.TIME_TYPE, nullable=False),
        pa.field("min", pa.float32(), nullable=False),
        pa.field("mean", pa.float32(), nullable=False),
        pa.field("max", pa.float32(), nullable=False),
        pa.field("count", pa.uint64(), nullable=False),
        pa.field("stddev", pa.float32(), nullable=False),
    ]
)

__all__ = [
    "INSERT_BATCH_SIZE",
    "MAXIMUM_TIME",
    "MAX_POINT_WIDTH",
    "MINIMUM_TIME",
    "PW",
    "RAW_VALUES_SCHEMA",
    "STAT_F32_SCHEMA",
    "STAT_F64_SCHEMA",
    "_PW",
]
