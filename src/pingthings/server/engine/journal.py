"""The ingest journal: small inserts made durable before they reach the tree.

A buffered insert is acknowledged once its points are a row of this journal, a SQLite file of its
own next to the block database (WAL, ``synchronous=NORMAL``: a committed row survives SIGKILL).
Each row carries the stream number, the pending version its points will be merged into and the
merge policy. Merging writes the tree version in the block database first and removes the rows
afterwards, so a crash between the two leaves rows whose version is already committed; they are
recognised (their version is not above the stream's latest) and dropped when the engine opens.

A file of its own, rather than a table beside the blocks, so that journal appends never wait
behind a merge's write transaction, and the space the journal used is not left as free pages in
the block database after a clean stop (an empty journal is vacuumed to a few pages on close).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np

from pingthings.server.errors import DiskFull

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries(
    seq INTEGER PRIMARY KEY, sid INTEGER NOT NULL, version INTEGER NOT NULL, policy INTEGER NOT NULL,
    times BLOB NOT NULL, vals BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS entries_by_stream ON entries(sid, version);
"""
_APPEND = "INSERT INTO entries(sid, version, policy, times, vals) VALUES(?,?,?,?,?)"
#: WAL size after which an append that may wait, a merge or the background merger checkpoints the
#: journal (an append from an event loop never does).
CHECKPOINT_BYTES = 4 << 20
#: Appended rows between two looks at the WAL's size.
CHECK_EVERY = 128
#: Size the journal's WAL file is cut back to after each checkpoint.
WAL_SIZE_LIMIT = 8 << 20


class JournalEntry(NamedTuple):
    """One journaled insert: stream number, pending version, merge policy and points."""

    sid: int
    version: int
    policy: int
    times: np.ndarray
    values: np.ndarray


def journal_path(engine_path: Path) -> Path:
    """Where the journal of the block database ``engine_path`` lives."""
    return engine_path.with_name(f"{engine_path.stem}.journal{engine_path.suffix}")


def _is_full(exc: sqlite3.Error) -> bool:
    """Whether a SQLite error means the disk (or the file's size limit) is full."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code == sqlite3.SQLITE_FULL or "disk is full" in str(exc) or "No space left" in str(exc)


class Journal:
    """Append-only log of buffered inserts, one SQLite file.

    Parameters
    ----------
    path
        The journal file (created if missing).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=60.0)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA wal_autocheckpoint=0")
        self._conn.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
        self._conn.executescript(_SCHEMA)
        self._closed = False
        self._appends = 0
        #: Transactions committed by :meth:`append` and :meth:`append_many` (rows share them).
        self.commits = 0

    def append(self, sid: int, version: int, policy: int, times: np.ndarray, values: np.ndarray) -> None:
        """Make one insert durable (one committed row); DiskFull when there is no room for it."""
        self.append_many([JournalEntry(sid, version, policy, times, values)])

    def append_many(self, rows: list[JournalEntry], wait: bool = True) -> bool:
        """Make several inserts durable in one transaction: all of them, or none (the error is
        raised, DiskFull when there is no room). One commit for many rows is the group commit of
        concurrent inserters: its cost is shared by every row.

        With ``wait=False`` (a caller in an event loop) nothing is written and False returned when
        another thread is using the journal; such a caller never checkpoints either.
        """
        if not rows:
            return True
        encoded = [
            (sid, version, policy, times.astype("<i8").tobytes(), values.astype("<f8").tobytes())
            for sid, version, policy, times, values in rows
        ]
        if not self._lock.acquire(blocking=wait):
            return False
        try:
            if self._closed:
                raise RuntimeError("the engine is closed")
            try:
                if len(encoded) == 1:  # autocommit: one statement is its own transaction
                    self._conn.execute(_APPEND, encoded[0])
                else:
                    self._conn.execute("BEGIN")
                    try:
                        self._conn.executemany(_APPEND, encoded)
                        self._conn.execute("COMMIT")
                    except BaseException:
                        if self._conn.in_transaction:  # SQLite may have rolled back already
                            self._conn.execute("ROLLBACK")
                        raise
            except sqlite3.Error as exc:
                if _is_full(exc):
                    raise DiskFull("the disk is full: the inserts were not journaled") from None
                raise
            self.commits += 1
            before, self._appends = self._appends, self._appends + len(rows)
            if wait and before // CHECK_EVERY != self._appends // CHECK_EVERY:
                self._checkpoint_if_big()
        finally:
            self._lock.release()
        return True

    def remove(self, sid: int, up_to_version: int) -> None:
        """Forget a stream's rows whose version is at most ``up_to_version`` (merged into the tree)."""
        with self._lock:
            if not self._closed:
                self._conn.execute("DELETE FROM entries WHERE sid=? AND version<=?", (sid, up_to_version))
                self._checkpoint_if_big()

    def checkpoint_if_big(self) -> None:
        """Fold the WAL into the file once it passes CHECKPOINT_BYTES (waits for the journal)."""
        with self._lock:
            if not self._closed:
                self._checkpoint_if_big()

    def _checkpoint_if_big(self) -> None:
        """Fold the WAL into the file once it passes CHECKPOINT_BYTES (lock held). The journal has
        one connection, so the checkpoint completes and the next append starts the WAL over."""
        try:
            size = os.path.getsize(f"{self.path}-wal")
        except OSError:
            return
        if size >= CHECKPOINT_BYTES:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def remove_stream(self, sid: int) -> None:
        """Forget every row of a stream (it was obliterated)."""
        with self._lock:
            if not self._closed:
                self._conn.execute("DELETE FROM entries WHERE sid=?", (sid,))

    def entries(self) -> Iterator[JournalEntry]:
        """Every row, in append order (read when the engine opens)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT sid, version, policy, times, vals FROM entries ORDER BY seq"
            ).fetchall()
        for sid, version, policy, times, vals in rows:
            yield JournalEntry(
                int(sid),
                int(version),
                int(policy),
                np.frombuffer(times, dtype="<i8").astype(np.int64),
                np.frombuffer(vals, dtype="<f8").astype(np.float64),
            )

    def disk_bytes(self) -> int:
        """Bytes the journal occupies on disk now (file and WAL)."""
        total = 0
        for suffix in ("", "-wal"):
            with contextlib.suppress(OSError):
                total += os.path.getsize(f"{self.path}{suffix}")
        return total

    def close(self) -> None:
        """Close the file; when no row is left, shrink it to its schema first."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            with contextlib.suppress(sqlite3.Error):
                (left,) = self._conn.execute("SELECT count(*) FROM entries").fetchone()
                if left == 0:
                    self._conn.execute("VACUUM")
                    self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._conn.close()
