"""A server in its own process, for tests that read its memory from ``/proc``."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def peak_rss(pid: int) -> int:
    """The process's peak resident set size (``VmHWM``) in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc status")


@contextmanager
def server_process(data: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Run ``python -m pingthings.server`` on ``data`` (default limits); yield it and its endpoint."""
    process = subprocess.Popen(
        [sys.executable, "-m", "pingthings.server", "--data", str(data), "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        line = process.stdout.readline()  # type: ignore[union-attr]
        assert "listening on" in line, line
        yield process, line.strip().rsplit(" ", 1)[-1]
    finally:
        process.terminate()
        process.communicate(timeout=60)
