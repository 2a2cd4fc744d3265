"""The ingest journal file: torn tails, forgetting merged records, rewriting, the earlier format."""

from __future__ import annotations

import os
import sqlite3
import uuid
from pathlib import Path

import numpy as np
import pytest

from pingthings.server.engine import Buffering, Engine
from pingthings.server.engine.journal import (
    CHECKPOINT_BYTES,
    MAGIC,
    Journal,
    JournalEntry,
    encode_record,
    journal_path,
    legacy_journal_path,
    read_entries,
)
from pingthings.wire.limits import FIRST_VERSION, MIN_TIME, TIME_LIMIT

T0 = 1_700_000_000 * 10**9


def second(i: int) -> tuple[np.ndarray, np.ndarray]:
    t = T0 + i * 10**9 + np.arange(120, dtype=np.int64) * 8_333_333
    return t, np.round(np.cos(t / 1e9), 3)


def entry(sid: int, version: int, i: int) -> JournalEntry:
    return JournalEntry(sid, version, 0, *second(i))


def same(found: list[JournalEntry], expected: list[JournalEntry]) -> None:
    assert [(e.sid, e.version, e.policy) for e in found] == [(e.sid, e.version, e.policy) for e in expected]
    for a, b in zip(found, expected, strict=True):
        np.testing.assert_array_equal(a.times, b.times)
        np.testing.assert_array_equal(a.values, b.values)


@pytest.mark.parametrize("cut", [1, 7, 20, 100])
def test_a_torn_last_record_is_cut_off_when_the_journal_opens(tmp_path: Path, cut: int) -> None:
    path = tmp_path / "j.log"
    rows = [entry(1, 2, i) for i in range(3)]
    journal = Journal(path)
    journal.append_many(rows)
    journal._closed = True  # as a crash would leave it: no clean close, no cut back
    os.close(journal._fd)
    torn = encode_record(*entry(1, 2, 3))[:-cut]
    with path.open("ab") as f:
        f.write(torn)
    reopened = Journal(path)
    same(list(reopened.entries()), rows)
    assert reopened.disk_bytes() == sum(len(encode_record(*r)) for r in rows)
    reopened.append(*entry(1, 2, 4))  # appends follow the last whole record
    same(read_entries(path), [*rows, entry(1, 2, 4)])
    reopened.remove(1, 2)
    reopened.close()


def test_reading_stops_at_a_record_that_fails_its_check(tmp_path: Path) -> None:
    path = tmp_path / "j.log"
    records = [encode_record(*entry(1, 2, i)) for i in range(3)]
    damaged = bytearray(records[1])
    damaged[-1] ^= 0xFF  # a flipped bit in the last value
    path.write_bytes(records[0] + bytes(damaged) + records[2])
    same(read_entries(path), [entry(1, 2, 0)])
    path.write_bytes(records[0] + b"XXXX" + records[1][len(MAGIC) :])
    same(read_entries(path), [entry(1, 2, 0)])


def test_the_file_is_cut_back_when_every_record_is_merged(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.log")
    journal.append_many([entry(1, 2, 0), entry(2, 5, 0)])
    journal.append(*entry(1, 3, 1))
    journal.remove(1, 2)
    assert len(read_entries(journal.path)) == 3  # forgotten, not yet rewritten
    journal.remove(2, 5)
    assert journal.disk_bytes() > 0  # stream 1's version 3 is still live
    journal.remove(1, 3)
    assert journal.disk_bytes() == 0
    journal.close()


def test_dead_records_are_dropped_by_rewriting_the_live_ones(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.log")
    record = len(encode_record(*entry(1, 1, 0)))
    keep = [entry(7, 1, 0), entry(7, 1, 1)]
    journal.append(*keep[0])
    for version in range(1, CHECKPOINT_BYTES // record + 2):  # stream 1 merges every insert
        journal.append(*entry(1, version, version))
        journal.remove(1, version)
        if version == 10:
            journal.append(*keep[1])
    assert journal.disk_bytes() < CHECKPOINT_BYTES  # rewritten at least once
    same(read_entries(journal.path), keep)
    journal.append(*entry(1, 99_999, 1))
    same(read_entries(journal.path), [*keep, entry(1, 99_999, 1)])
    journal.close()
    assert journal.disk_bytes() > 0  # live records are kept by a close


def test_the_sqlite_journal_of_earlier_versions_is_moved_into_the_file(tmp_path: Path) -> None:
    db = tmp_path / "engine.sqlite3"
    sid = uuid.uuid4().bytes
    with Engine(db) as engine:
        engine.create_stream(sid)
    legacy = legacy_journal_path(db)
    assert legacy != journal_path(db)
    with sqlite3.connect(legacy) as conn:  # the earlier format: one row per insert, seq ordered
        conn.execute(
            "CREATE TABLE entries(seq INTEGER PRIMARY KEY, sid INTEGER NOT NULL, version INTEGER NOT NULL,"
            " policy INTEGER NOT NULL, times BLOB NOT NULL, vals BLOB NOT NULL)"
        )
        for i in range(4):
            t, v = second(i)
            conn.execute(
                "INSERT INTO entries(sid, version, policy, times, vals) VALUES(1, ?, 0, ?, ?)",
                (FIRST_VERSION + 1, t.tobytes(), v.tobytes()),
            )
    with Engine(db, buffering=Buffering()) as engine:
        assert not legacy.exists()
        assert engine.latest_version(sid) == FIRST_VERSION + 1
        _, t, v = engine.raw_values(sid, MIN_TIME, TIME_LIMIT - 1)
        parts = [second(i) for i in range(4)]
        np.testing.assert_array_equal(t, np.concatenate([p[0] for p in parts]))
        np.testing.assert_array_equal(v, np.concatenate([p[1] for p in parts]))
    assert read_entries(journal_path(db)) == []


def test_a_move_from_the_earlier_format_cut_short_by_a_crash_is_not_applied_twice(tmp_path: Path) -> None:
    path = tmp_path / "engine.journal.log"
    legacy = tmp_path / "engine.journal.sqlite3"
    rows = [entry(1, 2, 0), entry(1, 2, 1)]
    with sqlite3.connect(legacy) as conn:
        conn.execute(
            "CREATE TABLE entries(seq INTEGER PRIMARY KEY, sid INTEGER NOT NULL, version INTEGER NOT NULL,"
            " policy INTEGER NOT NULL, times BLOB NOT NULL, vals BLOB NOT NULL)"
        )
        for r in rows:
            conn.execute(
                "INSERT INTO entries(sid, version, policy, times, vals) VALUES(?, ?, ?, ?, ?)",
                (r.sid, r.version, r.policy, r.times.tobytes(), r.values.tobytes()),
            )
    path.write_bytes(b"".join(encode_record(*r) for r in rows))  # moved, but not yet removed
    journal = Journal(path, legacy=legacy)
    same(list(journal.entries()), rows)
    assert not legacy.exists()
    journal.close()
