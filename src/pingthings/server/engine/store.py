"""SQLite persistence for blocks, superblocks and stream state.

One database file in WAL mode holds three tables:

* ``blocks(addr, data)``: immutable encoded tree blocks. An address is ``(sid << 40) | seq``, so a stream's
  blocks form one contiguous key range and Obliterate deletes them with one range delete.
* ``superblocks(sid, version, root, walltime)``: one row per data version (a version *is* its superblock).
* ``streams(uuid, sid, latest, root)``: the latest version of each live stream.

A commit is one transaction (``BEGIN IMMEDIATE`` … ``COMMIT``) that writes the new blocks, the new
superblock and the stream row, so a version is either entirely present or absent. ``synchronous=NORMAL``
in WAL mode makes every committed transaction survive a crash of the process (SIGKILL): the WAL is
written before COMMIT returns and only the fsync is deferred, which matters for power loss alone.

Reads borrow a connection from a small pool (WAL readers never block the writer; a pool rather than one
connection per thread, because worker threads come and go); writes share one connection under a lock,
since SQLite admits one writer at a time anyway.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from pingthings.wire.blocks import BLOCK_FORMAT

_SCHEMA = """
CREATE TABLE IF NOT EXISTS blocks(addr INTEGER PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS superblocks(
    sid INTEGER NOT NULL, version INTEGER NOT NULL, root INTEGER NOT NULL, walltime INTEGER NOT NULL,
    PRIMARY KEY(sid, version)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS streams(
    uuid BLOB PRIMARY KEY, sid INTEGER NOT NULL UNIQUE, latest INTEGER NOT NULL, root INTEGER NOT NULL)
    WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS engine_meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dropped_versions(
    sid INTEGER PRIMARY KEY, below INTEGER NOT NULL, before_walltime INTEGER NOT NULL);
"""

#: Bits of a block address that number blocks within one stream.
SEQ_BITS = 40
_IN_CHUNK = 900
#: SQLite page size of a new database.
PAGE_SIZE = 16384
#: Version of the block encodings (leaf_codec, node); stored in engine_meta and checked on open.
#: Format 2 added leaf groups; format 3 scaled-integer values (a leaf flag, see leaf_codec); format 4
#: grid-coded times (a leaf flag, see time_grid); format 5 pco leaf bodies (a leaf flag, see pco_leaf).
#: Older databases are valid format 5 and are restamped when opened, so older code refuses them
#: afterwards (new leaves may be pco ones).
FORMAT_VERSION = BLOCK_FORMAT
_READABLE_FORMATS = (1, 2, 3, 4, 5)
#: WAL growth (bytes of committed blocks) after which the background checkpointer runs.
CHECKPOINT_BYTES = 16 << 20
#: WAL file size after which the checkpointer waits for readers to finish so the log can start over
#: (a passive checkpoint cannot restart it while writers keep writing).
WAL_RESTART_BYTES = 32 << 20
#: Size the WAL file is cut back to whenever it starts over.
WAL_SIZE_LIMIT = 16 << 20
#: Seconds between two looks at the WAL file's size by the checkpointer.
WAL_POLL_SECONDS = 0.5
#: Read connections kept open for reuse.
MAX_IDLE_READERS = 16


def stream_addr_range(sid: int) -> tuple[int, int]:
    """Inclusive range of block addresses that belong to stream number ``sid``."""
    return sid << SEQ_BITS, ((sid + 1) << SEQ_BITS) - 1


class _Checkpointer(threading.Thread):
    """Keeps the WAL bounded: a passive checkpoint when kicked or when the WAL file passes
    ``CHECKPOINT_BYTES``, and a restarting one when it passes ``WAL_RESTART_BYTES``.

    Commits count only their blocks' bytes, while SQLite logs whole pages, so the file itself is
    looked at every ``WAL_POLL_SECONDS``. A RESTART checkpoint briefly holds new writers back until
    the readers of older snapshots are done; the next commit then starts the log over, and
    ``journal_size_limit`` cuts the file back.
    """

    def __init__(self, conn: sqlite3.Connection, wal_path: str) -> None:
        super().__init__(name="pingthings-engine-checkpoint", daemon=True)
        self._conn = conn
        self._wal_path = wal_path
        self._wake = threading.Event()
        self._stopping = False

    def kick(self) -> None:
        """Ask for a checkpoint soon."""
        self._wake.set()

    def stop(self) -> None:
        """Finish the current checkpoint, if any, and end the thread."""
        self._stopping = True
        self._wake.set()
        if self.is_alive():
            self.join()

    def _wal_size(self) -> int:
        try:
            return os.path.getsize(self._wal_path)
        except OSError:
            return 0

    def run(self) -> None:
        while True:
            kicked = self._wake.wait(WAL_POLL_SECONDS)
            self._wake.clear()
            if self._stopping:
                return
            size = self._wal_size()
            if not kicked and size < CHECKPOINT_BYTES:
                continue
            with contextlib.suppress(sqlite3.Error):
                mode = "RESTART" if size >= WAL_RESTART_BYTES else "PASSIVE"
                self._conn.execute(f"PRAGMA wal_checkpoint({mode})")


class BlockStore:
    """The SQLite database behind an :class:`~pingthings.server.engine.Engine`.

    Parameters
    ----------
    path
        Database file; created (with its schema) if missing.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._write_lock = threading.Lock()
        self._idle: list[sqlite3.Connection] = []
        self._all_conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._closed = False
        self._writer = self._connect()
        # Only takes effect while the file is new. Leaf blocks are ~1.6 kB: 4 kB pages hold two of them and
        # left 20 % of the file as slack (measured 4.1 vs 3.4 bytes per point with 16 kB pages).
        self._writer.execute(f"PRAGMA page_size={PAGE_SIZE}")
        self._writer.execute("PRAGMA journal_mode=WAL")
        self._writer.executescript(_SCHEMA)
        self._check_format()
        # Checkpoints (copying the WAL into the file, with fsyncs) run on a background thread instead of
        # inside whichever commit crosses the threshold: measured 15 % more insert throughput.
        self._writer.execute("PRAGMA wal_autocheckpoint=0")
        self._wal_bytes = 0
        self._checkpointer = _Checkpointer(self._connect(), self.path + "-wal")
        self._checkpointer.start()

    def _check_format(self) -> None:
        """Stamp a new database with the block format, refuse one written in another format."""
        conn = self._writer
        conn.execute("INSERT OR IGNORE INTO engine_meta(key, value) VALUES('format', ?)", (FORMAT_VERSION,))
        (found,) = conn.execute("SELECT value FROM engine_meta WHERE key='format'").fetchone()
        if int(found) in _READABLE_FORMATS and int(found) != FORMAT_VERSION:
            # Older code must not open a file that may now hold leaf groups.
            conn.execute("UPDATE engine_meta SET value=? WHERE key='format'", (FORMAT_VERSION,))
            found = FORMAT_VERSION
        if int(found) != FORMAT_VERSION:
            self.close()
            raise RuntimeError(
                f"{self.path} holds engine data in block format {found}; this version reads format "
                f"{', '.join(map(str, _READABLE_FORMATS))} only"
            )

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=60.0)
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=60000")
        conn.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
        with self._conns_lock:
            self._all_conns.append(conn)
        return conn

    @contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection]:
        """Borrow a read connection from the pool (threads come and go; connections stay few)."""
        with self._conns_lock:
            if self._closed:
                raise RuntimeError("the engine is closed")
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self._connect()
        try:
            yield conn
        finally:
            with self._conns_lock:
                keep = not self._closed and len(self._idle) < MAX_IDLE_READERS
                if keep:
                    self._idle.append(conn)
                elif conn in self._all_conns:
                    self._all_conns.remove(conn)
            if not keep:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()

    def _one(self, sql: str, params: Sequence[object]) -> tuple | None:
        with self._reader() as conn:
            return conn.execute(sql, params).fetchone()

    # ----------------------------------------------------------------- reads
    def read_blocks(self, addrs: Sequence[int]) -> dict[int, bytes]:
        """Fetch many blocks at once; missing addresses are absent from the result."""
        out: dict[int, bytes] = {}
        with self._reader() as conn:
            for i in range(0, len(addrs), _IN_CHUNK):
                part = addrs[i : i + _IN_CHUNK]
                marks = ",".join("?" * len(part))
                out.update(conn.execute(f"SELECT addr, data FROM blocks WHERE addr IN ({marks})", part))
        return out

    def load_stream(self, uuid: bytes) -> tuple[int, int, int] | None:
        """``(sid, latest, root)`` of a live stream, or None."""
        row = self._one("SELECT sid, latest, root FROM streams WHERE uuid=?", (uuid,))
        return None if row is None else (int(row[0]), int(row[1]), int(row[2]))

    def stream_uuid(self, sid: int) -> bytes | None:
        """The uuid of live stream number ``sid``, or None."""
        row = self._one("SELECT uuid FROM streams WHERE sid=?", (sid,))
        return None if row is None else bytes(row[0])

    def superblock(self, sid: int, version: int) -> tuple[int, int] | None:
        """``(root, walltime)`` of one version, or None."""
        row = self._one("SELECT root, walltime FROM superblocks WHERE sid=? AND version=?", (sid, version))
        return None if row is None else (int(row[0]), int(row[1]))

    def last_walltime(self, sid: int) -> int:
        """Commit wall time of the newest version of a stream."""
        row = self._one("SELECT walltime FROM superblocks WHERE sid=? ORDER BY version DESC LIMIT 1", (sid,))
        return int(row[0]) if row else 0

    def version_at(self, sid: int, wall_ns: int) -> int | None:
        """Newest version committed at or before ``wall_ns``, or None."""
        row = self._one(
            "SELECT version FROM superblocks WHERE sid=? AND walltime<=? ORDER BY version DESC LIMIT 1",
            (sid, wall_ns),
        )
        return None if row is None else int(row[0])

    def versions(self, sid: int) -> list[tuple[int, int, int]]:
        """``(version, root, walltime)`` of every stored version of a stream, oldest first."""
        with self._reader() as conn:
            rows = conn.execute(
                "SELECT version, root, walltime FROM superblocks WHERE sid=? ORDER BY version", (sid,)
            ).fetchall()
        return [(int(v), int(r), int(w)) for v, r, w in rows]

    def block_sizes(self, sid: int) -> dict[int, int]:
        """Encoded size of every block of a stream, by address."""
        lo, hi = stream_addr_range(sid)
        with self._reader() as conn:
            rows = conn.execute("SELECT addr, length(data) FROM blocks WHERE addr BETWEEN ? AND ?", (lo, hi))
            return {int(a): int(n) for a, n in rows}

    def dropped_below(self, sid: int) -> tuple[int, int] | None:
        """``(below, before_walltime)`` when a compaction dropped the stream's versions under ``below``."""
        row = self._one("SELECT below, before_walltime FROM dropped_versions WHERE sid=?", (sid,))
        return None if row is None else (int(row[0]), int(row[1]))

    def max_addr(self, sid: int) -> int:
        """Largest block address used by stream ``sid`` (or the range's first address minus one)."""
        lo, hi = stream_addr_range(sid)
        row = self._one("SELECT max(addr) FROM blocks WHERE addr BETWEEN ? AND ?", (lo, hi))
        return int(row[0]) if row and row[0] is not None else lo

    # ---------------------------------------------------------------- writes
    def _transaction(
        self,
        statements: Iterable[tuple[str, Sequence[object] | Iterable[Sequence[object]], bool]],
        last_must_hit: bool = False,
    ) -> None:
        """Run ``(sql, params, executemany)`` statements in one write transaction.

        With ``last_must_hit`` the transaction is rolled back (KeyError) unless the last statement changed
        exactly one row.
        """
        with self._write_lock:
            if self._closed:
                raise RuntimeError("the engine is closed")
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                rows = 0
                for sql, params, many in statements:
                    cur = conn.executemany(sql, params) if many else conn.execute(sql, params)  # type: ignore[arg-type]
                    rows = cur.rowcount
                if last_must_hit and rows != 1:
                    raise KeyError("the stream row is gone")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def create_stream(self, uuid: bytes, version: int, walltime: int) -> int:
        """Register a stream (replacing nothing) and its first, empty version; returns its sid."""
        with self._write_lock:
            if self._closed:
                raise RuntimeError("the engine is closed")
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute("SELECT value FROM engine_meta WHERE key='next_sid'").fetchone()
                sid = int(row[0]) if row else 1
                conn.execute(
                    "INSERT OR REPLACE INTO engine_meta(key, value) VALUES('next_sid', ?)", (sid + 1,)
                )
                conn.execute(
                    "INSERT INTO streams(uuid, sid, latest, root) VALUES(?,?,?,0)", (uuid, sid, version)
                )
                conn.execute(
                    "INSERT INTO superblocks(sid, version, root, walltime) VALUES(?,?,0,?)",
                    (sid, version, walltime),
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return sid

    def commit(
        self, uuid: bytes, sid: int, version: int, root: int, walltime: int, blocks: list[tuple[int, bytes]]
    ) -> None:
        """Write new blocks and a new version of one stream atomically (KeyError if the stream is gone)."""
        # The WAL logs whole pages: the blocks, plus a few B-tree pages (blocks, superblocks, streams).
        self._wal_bytes += sum(len(b) for _, b in blocks) + 4 * PAGE_SIZE
        if self._wal_bytes >= CHECKPOINT_BYTES:
            self._wal_bytes = 0
            self._checkpointer.kick()
        self._transaction(
            [
                ("INSERT INTO blocks(addr, data) VALUES(?, ?)", blocks, True),
                (
                    "INSERT INTO superblocks(sid, version, root, walltime) VALUES(?,?,?,?)",
                    (sid, version, root, walltime),
                    False,
                ),
                (
                    "UPDATE streams SET latest=?, root=? WHERE uuid=? AND sid=?",
                    (version, root, uuid, sid),
                    False,
                ),
            ],
            last_must_hit=True,
        )

    def drop_versions(self, sid: int, below: int, before_walltime: int, addrs: list[int]) -> None:
        """Delete a stream's versions under ``below`` and the blocks ``addrs``, in one transaction."""
        self._transaction(
            [
                ("DELETE FROM superblocks WHERE sid=? AND version<?", (sid, below), False),
                ("DELETE FROM blocks WHERE addr=?", [(a,) for a in addrs], True),
                (
                    "INSERT INTO dropped_versions(sid, below, before_walltime) VALUES(?,?,?) "
                    "ON CONFLICT(sid) DO UPDATE SET below=max(below, excluded.below), "
                    "before_walltime=max(before_walltime, excluded.before_walltime)",
                    (sid, below, before_walltime),
                    False,
                ),
            ]
        )

    def vacuum(self) -> None:
        """Rebuild the file without its free pages (returns freed space to the file system)."""
        with self._write_lock:
            self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._writer.execute("VACUUM")
            self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def live_uuids(self) -> list[bytes]:
        """The uuids of every live stream."""
        with self._reader() as conn:
            return [bytes(u) for (u,) in conn.execute("SELECT uuid FROM streams ORDER BY sid")]

    def obliterate(self, uuid: bytes, sid: int) -> None:
        """Delete a stream, all its versions and all its blocks."""
        lo, hi = stream_addr_range(sid)
        self._transaction(
            [
                ("DELETE FROM streams WHERE uuid=?", (uuid,), False),
                ("DELETE FROM superblocks WHERE sid=?", (sid,), False),
                ("DELETE FROM blocks WHERE addr BETWEEN ? AND ?", (lo, hi), False),
                ("DELETE FROM dropped_versions WHERE sid=?", (sid,), False),
            ]
        )

    def checkpoint(self) -> None:
        """Fold the WAL into the main database file (used before measuring the file size)."""
        with self._write_lock:
            self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        """Stop the checkpointer and close every connection this store opened."""
        checkpointer = getattr(self, "_checkpointer", None)  # absent if the constructor failed
        if checkpointer is not None:
            checkpointer.stop()
        with self._write_lock:
            self._closed = True
            with self._conns_lock:
                conns, self._all_conns, self._idle = self._all_conns, [], []
            for conn in conns:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
