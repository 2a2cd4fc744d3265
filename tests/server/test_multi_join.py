"""The incremental multi-stream join behind ArrowMultiValues, against a direct computation."""

from __future__ import annotations

import numpy as np
import pytest

from pingthings.server.service.multi_join import MultiJoin


def oracle(
    series: list[tuple[np.ndarray, np.ndarray]], start: int, end: int, period: int
) -> dict[int, list[float | None]]:
    """Slot (or time) → one value per stream: the last point in time order, None if absent."""
    rows: dict[int, list[float | None]] = {}
    for k, (times, values) in enumerate(series):
        for t, v in sorted(zip(times.tolist(), values.tolist(), strict=True), key=lambda p: p[0]):
            slot = (
                t
                if not period
                else (t + period // 2) // period * period
                if period % 2 == 0
                else (2 * t + period) // (2 * period) * period
            )
            if start <= slot < end:
                rows.setdefault(slot, [None] * len(series))[k] = v
    return rows


def run_join(
    series: list[tuple[np.ndarray, np.ndarray]], start: int, end: int, period: int, rng: np.random.Generator
) -> dict[int, list[float | None]]:
    join = MultiJoin(len(series), start, end, period)
    lo, hi = join.query_range()
    cursors = [0] * len(series)
    selected = [(t[(t >= lo) & (t < hi)], v[(t >= lo) & (t < hi)]) for t, v in series]
    got: dict[int, list[float | None]] = {}
    while True:
        if not join.exhausted:
            for k in join.needs():
                times, values = selected[k]
                if cursors[k] >= len(times):
                    join.finish(k)
                    continue
                size = int(rng.integers(1, 6))
                join.add(k, times[cursors[k] : cursors[k] + size], values[cursors[k] : cursors[k] + size])
                cursors[k] += size
        times, columns = join.take()
        for i, t in enumerate(times.tolist()):
            assert t not in got, "a row was emitted twice"
            got[t] = [None if np.isnan(c[i]) else float(c[i]) for c in columns]
        if join.exhausted:
            times, _ = join.take()
            assert len(times) == 0
            return got


@pytest.mark.parametrize("period", [0, 10, 7, 1])
def test_incremental_join_equals_direct_join(period: int) -> None:
    rng = np.random.default_rng(period)
    for _ in range(40):
        series = []
        for _ in range(int(rng.integers(1, 4))):
            n = int(rng.integers(0, 30))
            # few distinct times, so duplicates and shared slots are common; sorted and stable
            times = np.sort(rng.integers(-20, 120, n)).astype(np.int64)
            series.append((times, np.arange(n, dtype=np.float64) + 100 * len(series)))
        start, end = sorted(int(x) for x in rng.integers(-10, 110, 2))
        end += 1
        want = oracle(series, start, end, period)
        got = run_join(series, start, end, period, rng)
        assert sorted(got) == sorted(want)
        for t, row in want.items():
            assert got[t] == row, (t, got[t], row)


@pytest.mark.parametrize("period", [0, 10])
def test_streams_sampled_together_join_like_any_others(period: int) -> None:
    """Identical time arrays take the no-merge shortcut; some streams differing take the merge."""
    rng = np.random.default_rng(7 + period)
    for case in range(30):
        n = int(rng.integers(0, 40))
        times = np.sort(rng.integers(-20, 200, n)).astype(np.int64)
        series = [(times.copy(), rng.normal(size=n)) for _ in range(int(rng.integers(2, 5)))]
        if case % 3 == 0 and n:  # one stream misses a point: no shortcut
            series[-1] = (series[-1][0][1:], series[-1][1][1:])
        start, end = -10, 190
        want = oracle(series, start, end, period)
        got = run_join(series, start, end, period, rng)
        assert sorted(got) == sorted(want)
        for t, row in want.items():
            assert got[t] == row, (t, got[t], row)
