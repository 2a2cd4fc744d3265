"""Statistical windows and the arithmetic that combines partial statistics.

Partial statistics ("contributions") are tuples of arrays ``(key, count, min, max, sum, m2)``: a tree slot
that lies inside one window, or a single raw point (count 1, m2 0). Contributions with the same key are
merged with Chan's parallel formula ``M2 = Σ M2_i + Σ n_i (mean_i − mean)²``, which for raw points is the
exact two-pass sum of squared deviations.

Accuracy: slot means are float64 quotients ``sum / count``, each off by about one ulp of the mean, so the
relative error of a combined standard deviation is about ``1e-16 * |mean| / stddev`` (1e-10 for a signal
whose noise is a millionth of its level), against the numpy two-pass result.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class StatWindows:
    """Equal-length arrays describing statistical windows, in ascending time order.

    Attributes
    ----------
    time
        int64 window starts.
    min, mean, max
        float64 extremes and arithmetic mean of the window's points.
    count
        uint64 number of points.
    stddev
        float64 population standard deviation (ddof = 0).
    """

    time: np.ndarray
    min: np.ndarray
    mean: np.ndarray
    max: np.ndarray
    count: np.ndarray
    stddev: np.ndarray

    def __len__(self) -> int:
        return int(self.time.size)

    @staticmethod
    def empty() -> StatWindows:
        """No windows."""
        f = np.empty(0, dtype=np.float64)
        return StatWindows(
            np.empty(0, dtype=np.int64), f, f.copy(), f.copy(), np.empty(0, np.uint64), f.copy()
        )


class Contributions:
    """Accumulates partial statistics keyed by window number."""

    def __init__(self) -> None:
        self.parts: list[tuple[np.ndarray, ...]] = []
        #: Parts added by :meth:`add_slots` (their keys may repeat within the part).
        self.slot_parts = 0

    def add_slots(
        self,
        keys: np.ndarray,
        count: np.ndarray,
        mn: np.ndarray,
        mx: np.ndarray,
        sm: np.ndarray,
        m2: np.ndarray,
    ) -> None:
        """Add tree slots (already summarised buckets)."""
        if keys.size:
            self.parts.append((keys, count.astype(np.float64), mn, mx, sm, m2))
            self.slot_parts += 1

    def add_points(self, keys: np.ndarray, values: np.ndarray) -> None:
        """Add raw points whose keys are sorted, summarised per key first (two-pass M2 per group)."""
        if not keys.size:
            return
        # One array of the points' size is made here (the squared deviations, computed in place);
        # the rest are per window. Large temporaries cost page faults as well as their passes.
        cuts = np.flatnonzero(keys[1:] != keys[:-1])
        starts = np.empty(cuts.size + 1, dtype=np.intp)
        starts[0] = 0
        np.add(cuts, 1, out=starts[1:])
        lengths = np.empty_like(starts)
        np.subtract(starts[1:], starts[:-1], out=lengths[:-1])
        lengths[-1] = keys.size - starts[-1]
        total = np.add.reduceat(values, starts)
        dev = np.repeat(total / lengths, lengths)
        np.subtract(values, dev, out=dev)
        np.multiply(dev, dev, out=dev)
        self.parts.append(
            (
                keys[starts],
                lengths.astype(np.float64),
                np.minimum.reduceat(values, starts),
                np.maximum.reduceat(values, starts),
                total,
                np.add.reduceat(dev, starts),
            )
        )

    def combine(self) -> tuple[np.ndarray, ...]:
        """Merge contributions by key: returns ``(keys, count, min, mean, max, stddev)`` sorted by key."""
        if not self.parts:
            e = np.empty(0, dtype=np.float64)
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.uint64), e, e, e, e
        if len(self.parts) == 1 and not self.slot_parts:
            # Raw points alone (a short query, windows finer than the leaves): keys already unique.
            keys, cnt, mn, mx, sm, m2 = self.parts[0]
            return keys, cnt.astype(np.uint64), mn, sm / cnt, mx, np.sqrt(np.maximum(m2, 0.0) / cnt)
        cols = [np.concatenate([p[j] for p in self.parts]) for j in range(6)]
        keys, cnt, mn, mx, sm, m2 = cols
        if keys.size > 1 and not (keys[1:] >= keys[:-1]).all():
            order = np.argsort(keys, kind="stable")
            keys, cnt, mn, mx, sm, m2 = (c[order] for c in cols)
        if keys.size < 2 or (keys[1:] != keys[:-1]).all():
            # One contribution per window (e.g. windows finer than the leaves): nothing to merge.
            return keys, cnt.astype(np.uint64), mn, sm / cnt, mx, np.sqrt(np.maximum(m2, 0.0) / cnt)
        starts = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
        n = np.add.reduceat(cnt, starts)
        total = np.add.reduceat(sm, starts)
        mean = total / n
        group = np.repeat(np.arange(starts.size), np.diff(np.append(starts, keys.size)))
        dev = sm / cnt - mean[group]
        m2_total = np.add.reduceat(m2 + cnt * dev * dev, starts)
        std = np.sqrt(np.maximum(m2_total, 0.0) / n)
        return (
            keys[starts],
            n.astype(np.uint64),
            np.minimum.reduceat(mn, starts),
            mean,
            np.maximum.reduceat(mx, starts),
            std,
        )
