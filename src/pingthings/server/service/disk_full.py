"""Recognising a full disk behind any storage error, and saying so in words an operator can use.

SQLite reports a full disk as ``database or disk is full`` (SQLITE_FULL), the OS as ENOSPC; the
engine's clean-up after a failed commit can raise a second, unrelated error (``cannot rollback -
no transaction is active``) whose context holds the real one. The whole chain is searched.
"""

from __future__ import annotations

import errno
import shutil
import sqlite3
from pathlib import Path

from pingthings.server.errors import DiskFull

#: Space kept free beyond the write-ahead logs, so a checkpoint and the next writes have room.
HEADROOM_BYTES = 16 << 20

_SQLITE_FULL = 13


def caused_by_full_disk(exc: BaseException) -> bool:
    """Whether ``exc`` or any exception in its cause/context chain reports a full disk."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if isinstance(current, sqlite3.Error):
            code = getattr(current, "sqlite_errorcode", None)
            if code is not None and code & 0xFF == _SQLITE_FULL:
                return True
            if "database or disk is full" in str(current):
                return True
        current = current.__cause__ or current.__context__
    return False


def space_needed(data_dir: Path) -> int:
    """Bytes the server wants free: its write-ahead logs (a checkpoint copies them) plus headroom."""
    wal = 0
    for path in data_dir.glob("*-wal"):
        try:
            wal += path.stat().st_size
        except OSError:
            continue
    return wal + HEADROOM_BYTES


def disk_full_error(data_dir: Path | None) -> DiskFull:
    """A :class:`DiskFull` naming the directory, its free space and the space the server needs."""
    if data_dir is None:
        return DiskFull(
            "the disk holding the server's data is full; free space there and retry "
            "(nothing acknowledged was lost; writes resume by themselves)"
        )
    try:
        free = shutil.disk_usage(data_dir).free
    except OSError:
        free = 0
    return DiskFull(
        f"the disk holding {data_dir} is full ({_mib(free)} free); the server needs at least "
        f"{_mib(space_needed(data_dir))} free to accept writes: free space there and retry "
        "(nothing acknowledged was lost; writes resume by themselves)"
    )


def _mib(size: int) -> str:
    return f"{size / (1 << 20):.1f} MiB"
