"""One server per data directory: an exclusive lock on ``<data_dir>/server.lock``.

The lock is an ``flock`` on a file inside the directory, taken before either database is opened
and held for the server's life; the kernel drops it when the process dies, however it dies, so
a crash never leaves a stale lock. The holder writes its pid into the file, which lets a second
server say who holds the directory.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from pingthings.server.config import ConfigError

LOCK_FILE = "server.lock"


class DataDirLocked(ConfigError):
    """Another server (or another ``Server`` object in this process) is using the data directory."""


class DataDirLock:
    """The exclusive lock of one data directory.

    Parameters
    ----------
    data_dir
        The directory (it must exist).
    """

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock at once or raise :class:`DataDirLocked` naming the directory and holder pid."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f"process {holder}" if holder else "another process"
            raise DataDirLocked(
                f"data directory {self.path.parent} is already in use by {who} (lock file {self.path}); "
                "two servers on one directory would corrupt it: stop the other server or use another "
                "directory"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Drop the lock (the file stays; its content no longer matters)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
