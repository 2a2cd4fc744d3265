"""The engine's contract: versions, validation errors, limits, persistence and obliterate."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest

from pingthings.server.engine import Engine, MergePolicy, StatWindows
from pingthings.server.errors import (
    BadValue,
    InvalidPointWidth,
    InvalidTimeRange,
    InvalidVersions,
    NoSuchPoint,
    SameStream,
    StreamNotFound,
    VersionNotAvailable,
    WrongArgs,
)
from pingthings.wire.limits import FIRST_VERSION, MIN_TIME, TIME_LIMIT
from pingthings.wire.status import StatusCode

from .conftest import FakeClock


def pts(*times: int) -> tuple[np.ndarray, np.ndarray]:
    t = np.array(times, dtype=np.int64)
    return t, t.astype(np.float64) / 10


def test_new_stream_is_version_10_and_empty(engine: Engine, stream: bytes) -> None:
    assert engine.latest_version(stream) == FIRST_VERSION
    assert engine.flush(stream) == FIRST_VERSION
    ver, t, v = engine.raw_values(stream, MIN_TIME, TIME_LIMIT - 1)
    assert (ver, t.size, v.size) == (FIRST_VERSION, 0, 0)
    assert engine.count(stream) == (FIRST_VERSION, 0)
    assert len(engine.aligned_windows(stream, MIN_TIME, TIME_LIMIT - 1, 62)[1]) == 0
    with pytest.raises(NoSuchPoint):
        engine.nearest(stream, 0, backward=False)
    assert engine.changes(stream, 0, 0, 0)[1].size == 0


def test_versions_bump_per_insert_and_delete(engine: Engine, stream: bytes) -> None:
    assert engine.insert(stream, *pts(1, 2, 3)) == 11
    assert engine.insert(stream, np.empty(0, np.int64), np.empty(0)) == 11, "empty insert keeps the version"
    assert engine.delete(stream, 100, 200) == 12, "a delete that matches nothing still bumps"
    assert engine.delete(stream, 2, 3) == 13
    assert engine.flush(stream) == 13
    assert engine.raw_values(stream, 0, 10, version=11)[1].tolist() == [1, 2, 3]
    assert engine.raw_values(stream, 0, 10, version=13)[1].tolist() == [1, 3]
    assert engine.raw_values(stream, 0, 10, version=10)[1].tolist() == []
    assert engine.raw_values(stream, 0, 10)[0] == 13


@pytest.mark.parametrize("bad", [9, 1, 14, 10**9])
def test_missing_version_is_450_naming_it(engine: Engine, stream: bytes, bad: int) -> None:
    engine.insert(stream, *pts(1, 2, 3))
    engine.insert(stream, *pts(4))
    engine.delete(stream, 0, 2)
    with pytest.raises(VersionNotAvailable) as err:
        engine.raw_values(stream, 0, 10, version=bad)
    assert err.value.code == StatusCode.VERSION_NOT_AVAILABLE
    assert str(bad) in err.value.msg and "13" in err.value.msg


def test_version_at_time_uses_commit_wall_times(engine: Engine, stream: bytes, clock: FakeClock) -> None:
    created = clock.last
    engine.insert(stream, *pts(1))
    first = clock.last
    engine.insert(stream, *pts(2))
    second = clock.last
    assert engine.version_at_time(stream, created) == 10
    assert engine.version_at_time(stream, first - 1) == 10
    assert engine.version_at_time(stream, first) == 11
    assert engine.version_at_time(stream, second + 10**12) == 12
    with pytest.raises(VersionNotAvailable):
        engine.version_at_time(stream, created - 1)


def test_unknown_and_duplicate_streams(engine: Engine, stream: bytes) -> None:
    other = uuid.uuid4().bytes
    assert engine.exists(stream) and not engine.exists(other)
    with pytest.raises(SameStream):
        engine.create_stream(stream)
    calls = [
        lambda: engine.insert(other, *pts(1)),
        lambda: engine.delete(other, 0, 1),
        lambda: engine.raw_values(other, 0, 1),
        lambda: engine.latest_version(other),
        lambda: engine.flush(other),
        lambda: engine.aligned_windows(other, 0, 10, 1),
        lambda: engine.nearest(other, 0, False),
        lambda: engine.changes(other, 0, 0, 0),
        lambda: engine.obliterate(other),
    ]
    for call in calls:
        with pytest.raises(StreamNotFound) as err:
            call()
        assert err.value.code == StatusCode.NO_SUCH_STREAM


def test_insert_validation_rejects_whole_batch(engine: Engine, stream: bytes) -> None:
    good = np.array([5, 6], dtype=np.int64)
    for bad_t in (MIN_TIME - 1, TIME_LIMIT - 1, TIME_LIMIT, 2**63 - 1):
        with pytest.raises(InvalidTimeRange):
            engine.insert(stream, np.append(good, bad_t), np.zeros(3))
    with pytest.raises(BadValue, match="NaN"):
        engine.insert(stream, good, np.array([1.0, np.nan]))
    with pytest.raises(BadValue, match="Inf"):
        engine.insert(stream, good, np.array([np.inf, 1.0]))
    with pytest.raises(WrongArgs):
        engine.insert(stream, good, np.zeros(3))
    with pytest.raises(WrongArgs):
        engine.insert(stream, good.astype(np.float64), np.zeros(2))
    with pytest.raises(WrongArgs):
        engine.insert(stream, good, np.array(["a", "b"]))
    with pytest.raises(WrongArgs):
        engine.insert(stream, good, np.zeros(2), merge=7)
    with pytest.raises(InvalidPointWidth):
        engine.insert(stream, good, np.zeros(2), round_bits=63)
    assert engine.latest_version(stream) == FIRST_VERSION
    # The extremes of the valid interval are accepted.
    engine.insert(stream, np.array([MIN_TIME, TIME_LIMIT - 2]), np.array([1.0, 2.0]))
    assert engine.raw_values(stream, MIN_TIME, TIME_LIMIT - 1)[1].tolist() == [MIN_TIME, TIME_LIMIT - 2]


def test_rounding_to_bits_then_merging(engine: Engine, stream: bytes) -> None:
    t = np.array([1000, 1007, 1008, 1025, -9], dtype=np.int64)
    engine.insert(stream, t, np.arange(5.0), merge=MergePolicy.REPLACE, round_bits=4)
    _, got_t, got_v = engine.raw_values(stream, -100, 2000)
    expected = {(((x + 8) // 16) * 16) for x in t.tolist()}
    assert got_t.tolist() == sorted(expected)
    assert got_v[got_t.tolist().index(1008)] == 2.0, "REPLACE keeps the last of the batch"


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (MergePolicy.NEVER, [(100, 0), (105, 1), (110, 2), (110, 3), (110, 9), (110, 3), (120, 4)]),
        (MergePolicy.EQUAL, [(100, 0), (105, 1), (110, 2), (110, 3), (110, 9), (120, 4)]),
        (MergePolicy.RETAIN, [(100, 0), (105, 1), (110, 2), (120, 4)]),
        (MergePolicy.REPLACE, [(100, 0), (105, 1), (110, 3), (120, 4)]),
    ],
)
def test_merge_policies_within_and_across_batches(
    engine: Engine, stream: bytes, policy: MergePolicy, expected: list[tuple[int, int]]
) -> None:
    engine.insert(stream, np.array([100, 105, 110, 110, 120]), np.array([0.0, 1, 2, 3, 4]), merge=policy)
    engine.insert(stream, np.array([110, 110]), np.array([9.0, 3.0]), merge=policy)
    _, t, v = engine.raw_values(stream, 0, 1000)
    if policy == MergePolicy.REPLACE:
        expected = [(100, 0), (105, 1), (110, 3), (120, 4)]
    assert list(zip(t.tolist(), v.astype(int).tolist(), strict=True)) == expected


def test_query_range_validation(engine: Engine, stream: bytes) -> None:
    for lo, hi in [(MIN_TIME - 1, 0), (0, TIME_LIMIT), (5, 5), (6, 5)]:
        with pytest.raises(InvalidTimeRange) as err:
            engine.raw_values(stream, lo, hi)
        assert err.value.code == StatusCode.INVALID_TIME_RANGE
        with pytest.raises(InvalidTimeRange):
            engine.delete(stream, lo, hi)
        with pytest.raises(InvalidTimeRange):
            engine.iter_raw_values(stream, lo, hi)
    with pytest.raises(InvalidTimeRange):
        engine.nearest(stream, TIME_LIMIT, False)
    assert engine.raw_values(stream, MIN_TIME, TIME_LIMIT - 1)[1].size == 0


def test_point_width_and_width_limits(engine: Engine, stream: bytes) -> None:
    with pytest.raises(InvalidPointWidth):
        engine.aligned_windows(stream, 0, 100, 64)
    with pytest.raises(InvalidPointWidth):
        engine.aligned_windows(stream, 0, 100, -1)
    with pytest.raises(InvalidPointWidth):
        engine.windows(stream, 0, 100, 0)
    with pytest.raises(InvalidPointWidth):
        engine.windows(stream, 0, 100, 2**63 + 1)
    with pytest.raises(InvalidPointWidth):
        engine.changes(stream, 0, 0, 64)
    assert len(engine.windows(stream, 0, 100, 2**63)[1]) == 0
    assert len(engine.windows(stream, 0, 100, 101)[1]) == 0, "end truncated to whole widths"


def test_aligned_windows_clamps_full_axis_at_62(engine: Engine, stream: bytes) -> None:
    t = np.array([MIN_TIME, -5, 0, 10**18, TIME_LIMIT - 2], dtype=np.int64)
    engine.insert(stream, t, np.arange(5.0))
    _, w = engine.aligned_windows(stream, MIN_TIME, TIME_LIMIT - 1, 62)
    # start rounds to -2**62, end to 0: one window holding the two negative points.
    assert w.time.tolist() == [-(2**62)] and w.count.tolist() == [2]
    _, w = engine.aligned_windows(stream, MIN_TIME, TIME_LIMIT - 1, 60)
    # end rounds down to 2 * 2**60, which leaves out the point at TIME_LIMIT - 2.
    assert int(w.count.sum()) == int((t < 2 * 2**60).sum()) == 4 and w.time[0] == MIN_TIME
    assert len(engine.aligned_windows(stream, 5, 7, 3)[1]) == 0, "empty rounded range is no windows"
    assert isinstance(w, StatWindows) and w.count.dtype == np.uint64


def test_windows_emit_empty_windows_as_zeros(engine: Engine, stream: bytes) -> None:
    engine.insert(stream, np.array([10, 11, 35]), np.array([1.0, 3.0, 7.0]))
    _, w = engine.windows(stream, 0, 49, 10)
    assert w.time.tolist() == [0, 10, 20, 30]
    assert w.count.tolist() == [0, 2, 0, 1]
    assert w.mean.tolist() == [0.0, 2.0, 0.0, 7.0]
    assert w.stddev.tolist() == [0.0, 1.0, 0.0, 0.0]
    assert w.min.tolist() == [0.0, 1.0, 0.0, 7.0]


def test_nearest_directions(engine: Engine, stream: bytes) -> None:
    engine.insert(stream, np.array([80, 100]), np.array([8.0, 10.0]))
    assert engine.nearest(stream, 100, backward=True)[1:] == (80, 8.0)
    assert engine.nearest(stream, 100, backward=False)[1:] == (100, 10.0)
    assert engine.nearest(stream, TIME_LIMIT - 1, backward=True)[1] == 100
    with pytest.raises(NoSuchPoint):
        engine.nearest(stream, 80, backward=True)
    with pytest.raises(NoSuchPoint):
        engine.nearest(stream, 101, backward=False)


def test_changes_versions_and_errors(engine: Engine, stream: bytes) -> None:
    engine.insert(stream, *pts(1000))
    engine.insert(stream, *pts(2**57 + 5))
    with pytest.raises(InvalidVersions):
        engine.changes(stream, 12, 11, 0)
    with pytest.raises(VersionNotAvailable):
        engine.changes(stream, 0, 13, 0)
    ver, s, e = engine.changes(stream, 11, 0, 20)
    # Leaves report their whole bucket: the second point sits alone in root bucket [2**57, 2**57 + 2**56).
    assert ver == 12 and s.tolist() == [2**57] and e.tolist() == [2**57 + 2**56]
    assert engine.changes(stream, 12, 12, 0)[1].size == 0


def test_obliterate_frees_and_forgets(engine: Engine, stream: bytes, tmp_path: Path) -> None:
    t = np.arange(0, 200_000, dtype=np.int64) * 1000
    engine.insert(stream, t, np.sin(t / 1e6))
    keep = uuid.uuid4().bytes
    engine.create_stream(keep)
    engine.insert(keep, *pts(1, 2))
    engine.obliterate(stream)
    assert not engine.exists(stream)
    with pytest.raises(StreamNotFound):
        engine.raw_values(stream, 0, 10)
    with pytest.raises(StreamNotFound):
        engine.obliterate(stream)
    assert engine.raw_values(keep, 0, 10)[1].tolist() == [1, 2]
    engine.create_stream(stream)
    assert engine.count(stream) == (FIRST_VERSION, 0), "a re-created stream starts empty"


def test_reopen_keeps_every_version(tmp_path: Path) -> None:
    path = tmp_path / "engine.sqlite3"
    sid = uuid.uuid4().bytes
    rng = np.random.default_rng(3)
    batches = [np.sort(rng.integers(0, 10**12, 3000)) for _ in range(4)]
    with Engine(path) as eng:
        eng.create_stream(sid)
        for b in batches:
            eng.insert(sid, b, b / 7)
        eng.delete(sid, 0, 10**11)
    with Engine(tmp_path) as eng:  # a directory works too: it holds engine.sqlite3
        assert eng.latest_version(sid) == 15
        for i in range(4):
            expected = np.sort(np.concatenate(batches[: i + 1]), kind="stable")
            np.testing.assert_array_equal(eng.raw_values(sid, 0, 10**12, version=11 + i)[1], expected)
        assert eng.count(sid)[1] == sum(int((b >= 10**11).sum()) for b in batches)
        assert eng.insert(sid, *pts(5)) == 16, "writes continue after reopening"


def test_refuses_a_database_in_another_block_format(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "engine.sqlite3"
    Engine(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE engine_meta SET value = value + 1 WHERE key = 'format'")
    conn.close()
    with pytest.raises(RuntimeError, match="block format"):
        Engine(path)


def test_changes_see_deletions_under_a_subtree_created_later(engine: Engine, stream: bytes) -> None:
    # A point alone in a root bucket, then deleted, then a dense batch elsewhere in that bucket builds a
    # new subtree: its empty slots must still report the deleted point's bucket.
    lone = TIME_LIMIT - 2
    v_lone = engine.insert(stream, np.array([lone]), np.array([1.0]))
    engine.delete(stream, MIN_TIME, TIME_LIMIT - 1)
    dense = TIME_LIMIT - 2**45 + np.arange(5000, dtype=np.int64) * 1000
    latest = engine.insert(stream, dense, np.ones(dense.size))
    for res in (0, 20, 44):
        _, s, e = engine.changes(stream, v_lone, latest, res)
        assert ((s <= lone) & (lone < e)).any(), res
        assert ((s <= dense[0]) & (dense[0] < e)).any(), res
