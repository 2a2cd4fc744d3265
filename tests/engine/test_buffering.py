"""Buffered ingest in the engine: pending versions, read-your-writes, merge triggers, bounds, disk full."""

from __future__ import annotations

import contextlib
import resource
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from pingthings.server.engine import Buffering, Engine, GroupInsert, MergePolicy
from pingthings.server.engine.buffering import merge_age
from pingthings.server.engine.journal import journal_path, read_entries
from pingthings.server.errors import BadValue, DiskFull, InvalidTimeRange, StreamNotFound, WrongArgs
from pingthings.wire.limits import FIRST_VERSION, MIN_TIME, TIME_LIMIT

T0 = 1_700_000_000 * 10**9
ALL = (MIN_TIME, TIME_LIMIT - 1)


def second(i: int, stream: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One second of a 120 Hz stream."""
    t = T0 + i * 10**9 + np.arange(120, dtype=np.int64) * 8_333_333
    return t, np.round(100 * np.sin(t / 1e9 + stream), 3)


def journal_rows(path: Path) -> int:
    """Records in the journal file (a merged record stays until the file is cut back or rewritten)."""
    return len(read_entries(journal_path(path)))


@contextlib.contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    """Within the block, this process cannot write a file past ``limit`` bytes (RLIMIT_FSIZE: the
    write fails with EFBIG; the SIGXFSZ that comes with it is ignored meanwhile)."""
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    old = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, old[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old)
        signal.signal(signal.SIGXFSZ, handler)


def wait_until(condition: object, timeout: float = 30.0) -> None:
    """Poll ``condition()`` until it holds (the background merger works on its own schedule)."""
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "engine.sqlite3"


def test_inserts_share_a_pending_version_and_every_read_sees_them(path: Path) -> None:
    sid = uuid.uuid4().bytes
    with Engine(path, buffering=Buffering(max_age=3600.0)) as eng:
        eng.create_stream(sid)
        versions = [eng.insert(sid, *second(i)) for i in range(5)]
        assert versions == [FIRST_VERSION + 1] * 5
        assert eng.peek_version(sid) == FIRST_VERSION + 1
        assert journal_rows(path) == 5 and eng.buffered_points() == 600
        # The in-memory read path declines while points are buffered; the full path merges them.
        assert eng.iter_raw_pieces_in_memory(sid, *ALL) is None
        version, chunks = eng.iter_raw_pieces(sid, *ALL)
        assert version == FIRST_VERSION + 1
        assert sum(rows for _, _, rows in chunks) == 600
        assert journal_rows(path) == 0 and eng.buffered_points() == 0
        assert eng.iter_raw_pieces_in_memory(sid, *ALL) is not None
        # Sealed: the next insert opens the next version, and the old one stays a snapshot.
        assert eng.insert(sid, *second(5)) == FIRST_VERSION + 2
        assert eng.count(sid, version=FIRST_VERSION + 1)[1] == 600
        assert eng.count(sid)[1] == 720
        _, windows = eng.aligned_windows(sid, *ALL, 40)
        assert int(windows.count.sum()) == 720


def test_latest_version_seals_and_explicit_old_reads_do_not(path: Path) -> None:
    sid = uuid.uuid4().bytes
    with Engine(path, buffering=Buffering(max_age=3600.0)) as eng:
        eng.create_stream(sid)
        v1 = eng.insert(sid, *second(0))
        assert eng.latest_version(sid) == v1  # merged: v1 is now a snapshot
        v2 = eng.insert(sid, *second(1))
        assert v2 == v1 + 1
        assert eng.count(sid, version=v1)[1] == 120  # an older version: the buffer stays
        assert eng.buffered_points() == 120
        assert eng.flush(sid) == v2 and eng.buffered_points() == 0


def test_buffers_merge_by_size_policy_and_age(path: Path) -> None:
    sid = uuid.uuid4().bytes
    with Engine(path, buffering=Buffering(max_points=300, max_age=0.2)) as eng:
        eng.create_stream(sid)
        assert eng.insert(sid, *second(0)) == FIRST_VERSION + 1
        assert eng.insert(sid, *second(1)) == FIRST_VERSION + 1
        # 240 + 120 > 300: the buffer is merged first, this insert opens the next version.
        assert eng.insert(sid, *second(2)) == FIRST_VERSION + 2
        assert eng.peek_version(sid) == FIRST_VERSION + 2
        # Another merge policy merges too.
        assert eng.insert(sid, *second(3), merge=MergePolicy.REPLACE) == FIRST_VERSION + 3
        # Age: the background thread merges a buffer once its first insert is 0.2 s old.
        # The merger forgets the buffer before it removes the journal entries (replay skips entries
        # at or below the committed version, so the order is safe): wait for both.
        wait_until(lambda: eng.buffered_points() == 0 and journal_rows(path) == 0)
        assert eng.count(sid, version=FIRST_VERSION + 3)[1] == 480


def test_all_buffers_together_stay_within_max_bytes(path: Path) -> None:
    sids = [uuid.uuid4().bytes for _ in range(4)]
    budget = 16 * 120 * 3  # three inserts' worth
    with Engine(path, buffering=Buffering(max_age=3600.0, max_bytes=budget)) as eng:
        for s in sids:
            eng.create_stream(s)
        for i in range(5):
            for k, s in enumerate(sids):
                eng.insert(s, *second(i, k))
                assert eng.buffered_points() * 16 <= budget
        assert all(eng.count(s)[1] == 600 for s in sids)


def test_insert_group_shares_one_journal_commit(path: Path) -> None:
    sids = [uuid.uuid4().bytes for _ in range(3)]
    with Engine(path, buffering=Buffering(max_points=300, max_age=3600.0)) as eng:
        for s in sids:
            eng.create_stream(s)
        commits = eng._journal.commits
        group = [GroupInsert(s, *second(i, k)) for i in range(2) for k, s in enumerate(sids)]
        assert eng.insert_group(group) == [FIRST_VERSION + 1] * 6
        assert eng._journal.commits == commits + 1  # six inserts, one transaction
        assert eng.buffered_points() == 720 and journal_rows(path) == 6
        assert [eng.count(s)[1] for s in sids] == [240] * 3  # read-your-writes


def second_of_points(n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points in the second after :func:`second` (1)."""
    t = T0 + 10**9 + np.arange(n, dtype=np.int64) * (10**9 // n)
    return t, np.ones(n)


def test_insert_group_leaves_what_it_cannot_buffer_to_insert(path: Path) -> None:
    sid, other, third = uuid.uuid4().bytes, uuid.uuid4().bytes, uuid.uuid4().bytes
    with Engine(path) as plain:
        for s in (sid, other, third):
            plain.create_stream(s)
        assert plain.insert_group([GroupInsert(sid, *second(0))]) == [None]  # buffering off
    with Engine(path, buffering=Buffering(max_points=300, max_age=3600.0)) as eng:
        group = [
            GroupInsert(sid, *second(0)),
            GroupInsert(sid, *second(1)),
            GroupInsert(sid, *second(2)),  # would pass max_points: the buffer must merge first
            GroupInsert(sid, *second(3)),  # after a None of its stream: None too, order is kept
            GroupInsert(sid, np.array([T0]), np.array([np.nan])),  # its own error
            GroupInsert(uuid.uuid4().bytes, *second(0)),  # unknown stream
            GroupInsert(other, *second(0), merge=MergePolicy.REPLACE),
            GroupInsert(other, *second(1), merge=MergePolicy.NEVER),  # another policy: merge first
            GroupInsert(other, *second(0, 1)[:1], np.empty(0)),  # unequal lengths
            GroupInsert(sid, np.empty(0, np.int64), np.empty(0)),  # empty: left to insert()
            GroupInsert(third, *second(0)),
            GroupInsert(third, *second_of_points(300)),  # too big to buffer: left to insert()
            GroupInsert(third, *second(2)),  # after a None of its stream: None too
        ]
        results = eng.insert_group(group)
        assert results[:4] == [FIRST_VERSION + 1, FIRST_VERSION + 1, None, None]
        assert isinstance(results[4], BadValue)
        assert isinstance(results[5], StreamNotFound)
        assert results[6:8] == [FIRST_VERSION + 1, None]
        assert isinstance(results[8], WrongArgs)
        assert results[9:] == [None, FIRST_VERSION + 1, None, None]
        assert eng.buffered_points() == 480 and journal_rows(path) == 4
        assert [eng.count(s)[1] for s in (sid, other, third)] == [240, 120, 120]


def test_insert_one_answers_as_a_group_of_one(path: Path) -> None:
    sid, other = uuid.uuid4().bytes, uuid.uuid4().bytes
    with Engine(path) as plain:
        plain.create_stream(sid)
        plain.create_stream(other)
        assert plain.insert_one(sid, *second(0)) is None  # buffering off
    with Engine(path, buffering=Buffering(max_points=300, max_age=3600.0)) as eng:
        assert eng.insert_one(other, *second(0), wait=False) is None  # not loaded: never waits
        assert isinstance(eng.insert_one(uuid.uuid4().bytes, *second(0)), StreamNotFound)
        assert eng.insert_one(sid, *second(0)) == FIRST_VERSION + 1
        t, v = second(1)
        assert eng.insert_one(sid, t[::-1], v[::-1], wait=False) == FIRST_VERSION + 1  # sorted here
        assert eng.insert_one(sid, *second(2)) is None  # would pass max_points: merge first
        assert eng.insert_one(sid, np.empty(0, np.int64), np.empty(0)) is None
        assert eng.insert_one(sid, *second_of_points(300)) is None  # too big to buffer
        assert eng.insert_one(other, *second(0), merge=MergePolicy.REPLACE) == FIRST_VERSION + 1
        assert eng.insert_one(other, *second(1)) is None  # another policy: merge first
        assert isinstance(eng.insert_one(other, *second(0, 1)[:1], np.empty(0)), WrongArgs)
        assert eng.buffered_points() == 360 and journal_rows(path) == 3
        np.testing.assert_array_equal(eng.raw_values(sid, *ALL)[1], np.concatenate([second(0)[0], t]))
        locked = eng._streams[sid].lock
        locked.acquire()  # as another thread would hold it
        try:
            assert eng.insert_one(sid, *second(5), wait=False) is None
        finally:
            locked.release()


def test_inserts_refuse_every_unstorable_batch_whole(path: Path) -> None:
    """Times are checked at the ends of the sorted batch: every refusal is still found, time
    ranges before values, also of points that resolving duplicates drops."""
    sid = uuid.uuid4().bytes
    t = np.array([T0 + 2, T0, T0 + 1, T0 + 1], dtype=np.int64)
    with Engine(path, buffering=Buffering(max_age=3600.0)) as eng:
        eng.create_stream(sid)
        for insert in (
            eng.insert,
            eng.insert_one,
            lambda *a, **k: eng.insert_group([GroupInsert(*a, **k)])[0],
        ):
            for times, values, merge, error in (
                (t, [1.0, 2.0, np.nan, 3.0], MergePolicy.NEVER, BadValue),
                (t, [1.0, 2.0, 3.0, np.inf], MergePolicy.RETAIN, BadValue),  # a dropped duplicate too
                (t, [1.0, 2.0, -np.inf, np.inf], MergePolicy.NEVER, BadValue),
                (t - T0 + MIN_TIME - 1, [1.0, 2.0, 3.0, 4.0], MergePolicy.NEVER, InvalidTimeRange),
                (t - T0 + TIME_LIMIT - 3, [1.0, 2.0, 3.0, 4.0], MergePolicy.NEVER, InvalidTimeRange),
                (t - T0 + TIME_LIMIT - 3, [np.nan] * 4, MergePolicy.NEVER, InvalidTimeRange),
            ):
                outcome: object = None
                try:
                    outcome = insert(sid, times, np.array(values), merge=merge)
                except (BadValue, InvalidTimeRange) as exc:
                    outcome = exc
                assert isinstance(outcome, error), (insert, times, values, outcome)
        assert eng.buffered_points() == 0
        assert eng.insert_one(sid, t - T0 + MIN_TIME, np.ones(4)) == FIRST_VERSION + 1
        assert eng.insert(sid, t - T0 + TIME_LIMIT - 4, np.ones(4)) == FIRST_VERSION + 1
        assert eng.count(sid, *ALL)[1] == 8


def test_insert_group_disk_full_fails_every_insert_of_the_group(path: Path) -> None:
    sids = [uuid.uuid4().bytes for _ in range(2)]
    with Engine(path, buffering=Buffering(max_age=3600.0)) as eng:
        for s in sids:
            eng.create_stream(s)
        eng.insert_group([GroupInsert(s, *second(0, k)) for k, s in enumerate(sids)])
        with file_size_limit(eng.journal_bytes() + 20_000):  # room for a few groups, not 200
            for i in range(1, 200):
                results = eng.insert_group([GroupInsert(s, *second(i, k)) for k, s in enumerate(sids)])
                if not isinstance(results[0], int):
                    break
            assert all(isinstance(r, DiskFull) for r in results), results
            acknowledged = eng.buffered_points()
            assert acknowledged == 2 * 120 * i  # the refused group left nothing behind
            assert len(read_entries(journal_path(path))) == 2 * i  # nor a torn record
    with Engine(path) as eng:  # every acknowledged point is there, the refused ones are not
        assert sum(eng.count(s)[1] for s in sids) == acknowledged


def test_disk_full_journal_refuses_the_insert(path: Path) -> None:
    sid = uuid.uuid4().bytes
    with Engine(path, buffering=Buffering(max_age=3600.0)) as eng:
        eng.create_stream(sid)
        eng.insert(sid, *second(0))
        # The journal may hardly grow: its write then fails with EFBIG, as with ENOSPC on a full disk.
        with file_size_limit(eng.journal_bytes() + 10_000):
            with pytest.raises(DiskFull, match="disk is full"):
                for i in range(1, 200):
                    eng.insert(sid, *second(i))
            acknowledged = eng.buffered_points()
    with Engine(path) as eng:  # every acknowledged point is there, the refused one is not
        assert eng.count(sid)[1] == acknowledged


def test_merge_ages_of_streams_spread_over_the_last_quarter_of_max_age() -> None:
    ages = [merge_age(uuid.UUID(int=k).bytes, 10.0) for k in range(2000)]
    assert all(7.5 <= a <= 10.0 for a in ages)
    assert merge_age(uuid.UUID(int=7).bytes, 10.0) == ages[7]  # the same for a stream every time
    counts, _ = np.histogram(ages, bins=5, range=(7.5, 10.0))
    assert counts.min() > 0.15 * len(ages), counts  # no fifth of the window is left (nearly) empty


def test_streams_born_together_are_not_merged_all_at_once(path: Path) -> None:
    # 200 buffers, all as old as 7/8 of max_age: about half of them have reached their merge age.
    sids = [uuid.uuid4().bytes for _ in range(200)]
    with Engine(path, buffering=Buffering(max_age=3600.0)) as eng:
        for k, sid in enumerate(sids):
            eng.create_stream(sid)
            eng.insert(sid, *second(0, k))
        for sid in sids:
            buffer = eng._stream(sid).buffer
            assert buffer is not None
            buffer.born -= 0.875 * 3600.0
        eng._merge_older_than(3600.0)
        merged = [sid for sid in sids if eng._stream(sid).buffer is None]
        assert 50 < len(merged) < 150
        # Time passes between the inserts and the look (up to a second or so on a busy machine), so a
        # stream whose merge age lies just above 7/8 of max_age may be due too: only that slack is
        # left unchecked.
        due = {sid for sid in sids if merge_age(sid, 3600.0) <= 0.875 * 3600.0}
        not_due = {sid for sid in sids if merge_age(sid, 3600.0) > 0.875 * 3600.0 + 30.0}
        assert due <= set(merged)
        assert not (not_due & set(merged))
        for sid in sids:  # both halves read back whole
            assert eng.count(sid)[1] == 120
