"""Conversion of nanosecond timestamps to the ISO-8601 text the SQL view exposes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def iso_from_ns(ns: int) -> str:
    """Format nanoseconds since the Unix epoch as fixed-width ISO-8601 UTC text.

    The text always carries microseconds and ``+00:00``, so timestamps compare correctly as
    strings in SQL (``last_written > $1``).

    Parameters
    ----------
    ns
        Nanoseconds since 1970-01-01T00:00:00Z (may be negative).

    Returns
    -------
    str
        For example ``2024-01-02T03:04:05.123456+00:00``.
    """
    return (_EPOCH + timedelta(microseconds=ns // 1000)).isoformat(timespec="microseconds")
