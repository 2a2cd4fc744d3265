"""The SQLite connection shared by every part of the metadata store, and its locking."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from os import PathLike
from pathlib import Path
from typing import Self

from pingthings.server.errors import ServerError
from pingthings.server.metadata.schema import SCHEMA_VERSION, create_schema
from pingthings.wire.status import StatusCode


class StoreCore:
    """Owns the read-write connection; the parts of the store build on it.

    One connection in WAL mode, guarded by a lock: SQLite serialises writers anyway and every
    metadata operation is short. ``sql_query`` uses its own read-only connection.

    Parameters
    ----------
    path
        The database file; created (with the schema and default units) if missing.
    clock
        Returns the wall-clock time in ns; injectable for tests.
    """

    def __init__(self, path: str | PathLike[str], clock: Callable[[], int] = time.time_ns) -> None:
        self._path = Path(path)
        self._clock = clock
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
        self._closed = False
        try:
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = NORMAL")
            self._conn.execute("PRAGMA busy_timeout = 10000")
            with self._write() as conn:
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version == 0:
                    create_schema(conn)
                elif version != SCHEMA_VERSION:
                    raise ServerError(
                        f"metadata database {self._path} has schema version {version}; "
                        f"this server understands version {SCHEMA_VERSION}",
                        StatusCode.INVARIANT_FAILURE,
                    )
        except BaseException:
            self._conn.close()
            raise

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    def close(self) -> None:
        """Close the connection; later calls raise."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise ServerError("the metadata store is closed", StatusCode.INVARIANT_FAILURE)

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """Hold the lock and one write transaction; commit on success, roll back on error."""
        with self._lock:
            self._check_open()
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """Hold the lock for a read (one consistent snapshot per statement)."""
        with self._lock:
            self._check_open()
            yield self._conn

    def _now_ns(self) -> int:
        return int(self._clock())
