"""Small result types returned by stream queries."""

from __future__ import annotations

from typing import NamedTuple


class Point(NamedTuple):
    """One stored point, as returned by ``nearest``, ``earliest`` and ``latest``.

    Attributes
    ----------
    time
        Nanoseconds since the Unix epoch (UTC).
    value
        The stored value.
    """

    time: int
    value: float
