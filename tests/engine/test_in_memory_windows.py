"""Aligned windows, Windows and Nearest answered from memory: same answers as the full path, and
declined whenever the full path must do something (read the store, merge buffered inserts,
resolve an older version) or the work would exceed the bound an event loop can afford."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest

from pingthings.server.engine import Buffering, Engine
from pingthings.server.engine.engine import IN_MEMORY_BUDGET, IN_MEMORY_WINDOWS
from pingthings.server.engine.stats import StatWindows
from pingthings.server.errors import InvalidPointWidth, InvalidTimeRange, NoSuchPoint
from pingthings.wire.limits import MIN_TIME, TIME_LIMIT

T0 = 1_700_000_000 * 10**9
PERIOD = 8_333_333  # 120 Hz
#: A range holding every point of these tests in whole 2^30 ns windows.
WIDE = (T0 - (1 << 32), T0 + (1 << 36))


def points(n: int, first: int = 0) -> tuple[np.ndarray, np.ndarray]:
    i = np.arange(first, first + n)
    return T0 + i.astype(np.int64) * PERIOD, np.round(np.sin(i / 50.0), 6)


def same(a: StatWindows, b: StatWindows) -> None:
    for name in ("time", "min", "mean", "max", "count", "stddev"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def end_of(n: int) -> int:
    return T0 + n * PERIOD


def test_cached_small_queries_are_answered_from_memory_with_the_full_paths_result(tmp_path: Path) -> None:
    engine = Engine(tmp_path / "e.sqlite3")
    sid = uuid.uuid4().bytes
    engine.create_stream(sid)
    engine.insert(sid, *points(1200))
    latest = engine.insert(sid, *points(600, 1200))
    for pw in (24, 30, 34, 40):  # ~900 windows down to one
        expected = engine.aligned_windows(sid, T0, end_of(1800), pw)  # warms the cache too
        found = engine.aligned_windows_in_memory(sid, T0, end_of(1800), pw)
        assert found is not None, pw
        assert found[0] == expected[0] == latest
        same(found[1], expected[1])
        pinned = engine.aligned_windows_in_memory(sid, T0, end_of(1800), pw, version=latest)
        assert pinned is not None and pinned[0] == latest
    empty = engine.aligned_windows_in_memory(sid, T0, T0 + 1, 30)  # rounds to an empty range
    assert empty is not None and empty[0] == latest and len(empty[1]) == 0
    engine.close()


def test_anything_that_needs_the_store_or_another_version_is_declined(tmp_path: Path) -> None:
    path = tmp_path / "e.sqlite3"
    engine = Engine(path)
    sid = uuid.uuid4().bytes
    engine.create_stream(sid)
    first = engine.insert(sid, *points(1200))
    engine.insert(sid, *points(10, 1200))
    engine.aligned_windows(sid, T0, end_of(1210), 30)
    assert engine.aligned_windows_in_memory(sid, T0, end_of(1210), 30) is not None
    assert engine.aligned_windows_in_memory(sid, T0, end_of(1210), 30, version=first) is None
    engine._reader.cache.clear()
    assert engine.aligned_windows_in_memory(sid, T0, end_of(1210), 30) is None  # nodes not cached
    engine.close()
    reopened = Engine(path)
    assert reopened.aligned_windows_in_memory(sid, T0, end_of(1210), 30) is None  # not loaded yet
    unknown = uuid.uuid4().bytes
    assert reopened.aligned_windows_in_memory(unknown, T0, end_of(1210), 30) is None  # full path says why
    reopened.aligned_windows(sid, T0, end_of(1210), 30)
    with pytest.raises(InvalidPointWidth):
        reopened.aligned_windows_in_memory(sid, T0, end_of(1210), 64)  # arguments are still checked
    reopened.close()
    no_cache = Engine(path, cache_bytes=0)
    no_cache.aligned_windows(sid, T0, end_of(1210), 30)
    assert no_cache.aligned_windows_in_memory(sid, T0, end_of(1210), 30) is None
    no_cache.close()


def test_buffered_inserts_send_the_read_to_the_full_path_which_merges_them(tmp_path: Path) -> None:
    sid = uuid.uuid4().bytes
    with Engine(tmp_path / "e.sqlite3", buffering=Buffering(max_age=3600.0)) as engine:
        engine.create_stream(sid)
        engine.insert(sid, *points(1200))
        engine.aligned_windows(sid, *WIDE, 30)  # merges, warms
        assert engine.aligned_windows_in_memory(sid, *WIDE, 30) is not None
        pending = engine.insert(sid, *points(120, 1200))  # buffered, not merged
        assert engine.aligned_windows_in_memory(sid, *WIDE, 30) is None
        version, windows = engine.aligned_windows(sid, *WIDE, 30)
        assert version == pending and int(windows.count.sum()) == 1320  # read-your-writes
        found = engine.aligned_windows_in_memory(sid, *WIDE, 30)
        assert found is not None and found[0] == pending
        same(found[1], windows)


def test_queries_beyond_the_bound_are_declined(tmp_path: Path) -> None:
    engine = Engine(tmp_path / "e.sqlite3")
    sid = uuid.uuid4().bytes
    engine.create_stream(sid)
    n = IN_MEMORY_BUDGET.points + 20_000
    engine.insert(sid, *points(n))
    end = end_of(n) + (1 << 30)  # past the last window that holds points
    # Too many windows: 2^24 ns windows over ~20 minutes are ~70,000.
    assert (end - T0) >> 24 > IN_MEMORY_WINDOWS
    engine.aligned_windows(sid, T0, end, 24)
    assert engine.aligned_windows_in_memory(sid, T0, end, 24) is None
    # Few windows, but every leaf is wider than a window: all n points would be scanned.
    pw = 29
    assert (end - T0) >> pw <= IN_MEMORY_WINDOWS
    full = engine.aligned_windows(sid, T0, end, pw)
    assert int(full[1].count.sum()) == n
    assert engine.aligned_windows_in_memory(sid, T0, end, pw) is None
    # Wide windows are answered from the nodes' statistics, within the bound.
    wide = engine.aligned_windows_in_memory(sid, T0, end, 40)
    assert wide is not None
    same(wide[1], engine.aligned_windows(sid, T0, end, 40)[1])
    engine.close()


@pytest.mark.parametrize("pw", [23, 27, 30, 33])
def test_short_ranges_deep_in_the_tree_match_a_direct_computation(tmp_path: Path, pw: int) -> None:
    # A few seconds, far from the root: the walk goes down single cut slots before it branches.
    engine = Engine(tmp_path / "e.sqlite3")
    sid = uuid.uuid4().bytes
    engine.create_stream(sid)
    t, v = points(3000)
    engine.insert(sid, t, v)
    lo, hi = int(t[137]), int(t[2861])
    engine.aligned_windows(sid, lo, hi, pw)
    found = engine.aligned_windows_in_memory(sid, lo, hi, pw)
    assert found is not None
    windows = found[1]
    mask = (1 << pw) - 1
    inside = (t >= (lo & ~mask)) & (t < (hi & ~mask))
    keys, first = np.unique(t[inside] >> pw, return_index=True)
    np.testing.assert_array_equal(windows.time, keys << pw)
    np.testing.assert_array_equal(windows.count, np.diff(np.append(first, inside.sum())))
    sums = np.add.reduceat(v[inside], first) if first.size else np.empty(0)
    np.testing.assert_allclose(windows.mean, sums / windows.count, rtol=1e-12)
    np.testing.assert_array_equal(windows.min, np.minimum.reduceat(v[inside], first))
    np.testing.assert_array_equal(windows.max, np.maximum.reduceat(v[inside], first))
    engine.close()


def test_windows_from_memory_match_the_full_path_and_decline_as_aligned_windows_do(tmp_path: Path) -> None:
    sid = uuid.uuid4().bytes
    with Engine(tmp_path / "e.sqlite3", buffering=Buffering(max_age=3600.0)) as engine:
        engine.create_stream(sid)
        t, v = points(1200)
        engine.insert(sid, t, v)
        width = 700_000_000  # not a power of two: windows cut slots anywhere
        lo, hi = T0 - 3 * width, T0 + 20 * width  # empty windows at both ends
        expected = engine.windows(sid, lo, hi, width)  # merges the buffer, warms the cache
        found = engine.windows_in_memory(sid, lo, hi, width)
        assert found is not None and found[0] == expected[0]
        same(found[1], expected[1])
        assert len(found[1]) == 23 and int(found[1].count.sum()) == 1200
        assert found[1].count[0] == 0 and found[1].count[-1] == 0
        engine.insert(sid, *points(120, 1200))  # buffered: the full path must merge it first
        assert engine.windows_in_memory(sid, lo, hi, width) is None
        version, merged = engine.windows(sid, lo, hi, width)
        assert version > expected[0] and int(merged.count.sum()) == 1320
        assert engine.windows_in_memory(sid, lo, hi, width, version=expected[0]) is None  # older version
        assert engine.windows_in_memory(sid, lo, lo + (IN_MEMORY_WINDOWS + 1) * 1000, 1000) is None  # bound
        empty = engine.windows_in_memory(sid, hi, lo, width)
        assert empty is not None and len(empty[1]) == 0
        with pytest.raises(InvalidPointWidth):
            engine.windows_in_memory(sid, lo, hi, 0)


def test_nearest_from_memory_matches_the_full_path_and_declines_what_needs_the_store(tmp_path: Path) -> None:
    path = tmp_path / "e.sqlite3"
    sid = uuid.uuid4().bytes
    with Engine(path, buffering=Buffering(max_age=3600.0)) as engine:
        engine.create_stream(sid)
        t, v = points(5000)
        first = engine.insert(sid, t, v)
        engine.raw_values(sid, MIN_TIME, TIME_LIMIT - 1)  # caches every block
        probes = [int(t[0]) - 1, int(t[0]), int(t[2500]) + 1, int(t[-1]), int(t[-1]) + 1]
        for when in probes:
            for backward in (False, True):
                try:
                    expected: tuple[int, int, float] | None = engine.nearest(sid, when, backward)
                except NoSuchPoint:
                    expected = None
                if expected is None:
                    with pytest.raises(NoSuchPoint):
                        engine.nearest_in_memory(sid, when, backward)
                else:
                    assert engine.nearest_in_memory(sid, when, backward) == expected
        engine.insert(sid, *points(10, 5000))  # buffered: the full path must merge it first
        assert engine.nearest_in_memory(sid, int(t[-1]) + 1, False) is None
        version, when, _ = engine.nearest(sid, int(t[-1]) + 1, False)
        assert version > first and when == T0 + 5000 * PERIOD  # read-your-writes
        assert engine.nearest_in_memory(sid, int(t[0]), False, version=first) is None  # older version
        engine._reader.cache.clear()
        assert engine.nearest_in_memory(sid, int(t[0]), False) is None  # not cached
        with pytest.raises(InvalidTimeRange):
            engine.nearest_in_memory(sid, TIME_LIMIT, False)


def test_short_queries_read_leaf_by_leaf_with_the_batched_scans_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pingthings.server.engine import query

    engine = Engine(tmp_path / "e.sqlite3")
    sid = uuid.uuid4().bytes
    engine.create_stream(sid)
    n = 200_000
    t, v = points(n)
    for lo in range(0, n, 50_000):  # bulk inserts: leaves grouped in blocks
        engine.insert(sid, t[lo : lo + 50_000], v[lo : lo + 50_000])
    engine.insert(sid, t[:1000] + 1, np.ones(1000))  # a rewritten tail of a group
    queries = [
        (int(t[i]), int(t[i + span]), pw)
        for i in range(0, n - 5000, 9100)
        for span in (100, 700, 2500)
        for pw in (20, 24, 27)
    ]
    monkeypatch.setattr(query, "FEW_LEAVES", 0)  # every query through BlockReader.scan
    expected = [engine.aligned_windows(sid, lo, hi, pw)[1] for lo, hi, pw in queries]
    monkeypatch.setattr(query, "FEW_LEAVES", 8)
    from_memory = 0
    for (lo, hi, pw), windows in zip(queries, expected, strict=True):
        assert len(windows) > 0
        same(engine.aligned_windows(sid, lo, hi, pw)[1], windows)
        cached = engine.aligned_windows_in_memory(sid, lo, hi, pw)  # None past its bounds
        if cached is not None:
            same(cached[1], windows)
            from_memory += 1
    assert from_memory > len(queries) // 2
    engine.close()
