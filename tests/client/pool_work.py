"""Functions run in worker processes by the pickling tests (importable by spawned children)."""

from __future__ import annotations

import os
from uuid import UUID

from pingthings.timeseries import Client


def count_in_worker(job: tuple[Client, UUID]) -> tuple[int, int]:
    """Count a stream's points with a client that came through pickle; return (pid, count)."""
    conn, uuid = job
    try:
        return os.getpid(), conn.stream_from_uuid(uuid).count()
    finally:
        conn.close()
