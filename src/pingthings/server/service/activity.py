"""The SQL view's write-activity columns, updated off the insert's critical path.

Every insert updates its stream's activity columns in the metadata store (``record_write``). A
buffered insert can be finished in the event loop, so instead of a worker-thread hop of its own
each insert queues its record here; one worker call then writes every queued record, in order,
and the records that arrive meanwhile wait for the next one. The columns end up exactly as with
one call per insert, a moment later.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pingthings.server.service.convert import blocking

log = logging.getLogger("pingthings.server")


class ActivityRecorder:
    """Queues ``meta.record_write`` calls and runs them in batches in a worker thread.

    Parameters
    ----------
    meta
        The metadata store (its ``record_write(uuid, last_written_ns, points)`` is called).
    """

    def __init__(self, meta: Any) -> None:
        self._meta = meta
        self._queued: list[tuple[bytes, int, int]] = []
        self._task: asyncio.Task[None] | None = None

    def note(self, uuid: bytes, written_ns: int, points: int) -> None:
        """Queue one record (call from the event loop)."""
        self._queued.append((uuid, written_ns, points))
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        try:
            while self._queued:
                batch, self._queued = self._queued, []
                await blocking(self._write, batch)
        except Exception:  # the data is written; only the activity columns are late or missed
            log.exception("updating the streams' write-activity columns failed")
        finally:
            self._task = None

    def _write(self, batch: list[tuple[bytes, int, int]]) -> None:
        for uuid, written_ns, points in batch:
            self._meta.record_write(uuid, written_ns, points)

    async def wait(self) -> None:
        """Until every queued record is written (for a clean stop)."""
        while self._task is not None:
            await asyncio.shield(self._task)
