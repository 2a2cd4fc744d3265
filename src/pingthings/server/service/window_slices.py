"""Windows replies computed slice by slice, so memory follows the slice, not the request.

A Windows request names its window count only through ``(end - start) / width``: a narrow
width over a long range asks for tens of millions of windows (empty ones included), which the
engine would build as whole arrays before the first reply went out. Here the range is cut at
window boundaries into slices of :data:`WINDOWS_PER_SLICE` windows; each slice is computed,
sent, and dropped before the next. Every slice reads the version the first one resolved, so the
reply is one consistent snapshot.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from pingthings.server.engine.engine import windows_count
from pingthings.server.service.convert import blocking

#: Windows computed per engine call.
WINDOWS_PER_SLICE = 1 << 16


async def windows_in_slices(
    engine: Any, uuid: bytes, start: int, end: int, width: int, version: int
) -> AsyncIterator[tuple[int, Any]]:
    """Yield ``(version, StatWindows)`` for consecutive slices of the windows of one request.

    Small requests (and the ones the engine refuses) go to the engine in one call, which keeps
    its checks and messages; larger ones are checked here the same way first. A small request
    the engine can answer from memory within its bound (``Engine.windows_in_memory``: loaded
    stream, no buffered inserts, latest version, cached blocks) is answered here without a
    worker thread (see :mod:`.stat_reads`).
    """
    count = (end - start) // width if width > 0 and end > start else 0
    if count <= WINDOWS_PER_SLICE:
        found = engine.windows_in_memory(uuid, start, end, width, version)  # small and cached: no hop
        yield found if found is not None else await blocking(engine.windows, uuid, start, end, width, version)
        return
    stop = start + windows_count(start, end, width) * width  # the engine's range and count checks
    step = WINDOWS_PER_SLICE * width
    for lo in range(start, stop, step):
        hi = min(lo + step, stop)
        version, windows = await blocking(engine.windows, uuid, lo, hi, width, version)
        yield version, windows
