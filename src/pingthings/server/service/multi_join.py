"""Incremental outer join of several streams for ArrowMultiValues, in bounded memory.

Each stream's points arrive as sorted chunks. A row (a time, or a snapping slot) can be emitted
once every stream has been read past it, so only the chunks around the slowest stream's read
position stay in memory.
"""

from __future__ import annotations

import numpy as np

from pingthings.server.service.snapping import last_per_time, outer_join, snap_times

_EMPTY_T = np.empty(0, np.int64)
_EMPTY_V = np.empty(0, np.float64)


class MultiJoin:
    """Join ``n`` streams on time over ``[start, end)``; ``period > 0`` snaps to a grid first.

    Feed chunks with :meth:`add` / :meth:`finish` for the streams :meth:`needs` names, and collect
    complete rows with :meth:`take`. Within one row each stream contributes its last point (in
    time order) of that time or slot; a missing stream gives NaN.
    """

    def __init__(self, n: int, start: int, end: int, period: int = 0) -> None:
        self.start, self.end, self.period = start, end, period
        self._times = [_EMPTY_T] * n
        self._values = [_EMPTY_V] * n
        self._read_to: list[float] = [float("-inf")] * n  # last time read per stream
        self._done = [False] * n

    def query_range(self) -> tuple[int, int]:
        """Raw-time range to read so that every slot in [start, end) is covered."""
        if not self.period:
            return self.start, self.end
        # A slot g holds the times [g - P//2, g - P//2 + P); the slots of [start, end) are the
        # grid points from ceil(start) up to, not including, ceil(end).
        period, half = self.period, self.period // 2
        first = -(-self.start // period) * period
        stop = -(-self.end // period) * period
        return first - half, stop - half

    def needs(self) -> list[int]:
        """Streams whose next chunk is needed before more rows can be completed."""
        frontier = self._frontier()
        return [k for k, done in enumerate(self._done) if not done and self._read_to[k] <= frontier]

    def add(self, k: int, times: np.ndarray, values: np.ndarray) -> None:
        """Append a sorted chunk of stream ``k``."""
        if len(times) == 0:
            return
        self._times[k] = np.concatenate([self._times[k], times]) if len(self._times[k]) else times
        self._values[k] = np.concatenate([self._values[k], values]) if len(self._values[k]) else values
        self._read_to[k] = float(times[-1])

    def finish(self, k: int) -> None:
        """Stream ``k`` has no more points."""
        self._done[k] = True

    @property
    def exhausted(self) -> bool:
        """Every stream has been read to its end."""
        return all(self._done)

    def _frontier(self) -> float:
        return min((r for r, d in zip(self._read_to, self._done, strict=True) if not d), default=float("inf"))

    def take(self) -> tuple[np.ndarray, list[np.ndarray]]:
        """Remove and return the rows that no unread point can change: (times, one column per stream)."""
        frontier = self._frontier()
        if frontier == float("inf"):
            cut: float = float("inf")
        elif self.period:
            # The slot holding the frontier may still receive points; earlier slots are complete.
            slot = int(snap_times(np.array([int(frontier)], dtype=np.int64), self.period)[0])
            cut = slot - self.period // 2
        else:
            cut = frontier  # points at exactly the frontier may continue in the next chunk
        series = []
        for k in range(len(self._times)):
            times, values = self._times[k], self._values[k]
            n = len(times) if cut == float("inf") else int(np.searchsorted(times, cut, side="left"))
            head_t, head_v = times[:n], values[:n]
            self._times[k], self._values[k] = times[n:], values[n:]
            if self.period:
                head_t = snap_times(head_t, self.period)
            # Sorted (snapping keeps the order), so the rows inside [start, end) are one slice.
            lo, hi = np.searchsorted(head_t, [self.start, self.end])
            series.append(last_per_time(head_t[lo:hi], head_v[lo:hi]))
        return outer_join(series)
