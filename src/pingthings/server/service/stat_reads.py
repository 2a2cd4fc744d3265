"""Aligned-windows and Nearest reads: at most one worker-thread hop, none when answered from memory.

A StreamSet of a thousand streams asks for a few windows of each stream: a thousand calls whose
engine work, once the stream's tree is in the block cache, is a few cached nodes and some numpy
(~100-300 µs). Handing that to a worker thread and back costs about as much again in wake-ups
and GIL hand-overs, so such a query is answered right here in the event loop. The engine decides
(:meth:`~pingthings.server.engine.Engine.aligned_windows_in_memory`): only a loaded stream with no
buffered inserts (a read must see them merged first, which writes, so that goes to a worker), at
its latest version, with every block it needs cached, and within a fixed bound of windows, nodes
and points, so the loop is never held for more than a couple of milliseconds. Anything else takes
exactly one hop, as before. Windows queries do the same in :mod:`.window_slices`
(``Engine.windows_in_memory``), and so does Nearest here (at most a few dozen cached blocks).
"""

from __future__ import annotations

from typing import Any

from pingthings.server.service.convert import blocking


async def aligned_windows_of(
    engine: Any, uuid: bytes, start: int, end: int, point_width: int, version: int
) -> tuple[int, Any]:
    """``(version, StatWindows)`` of an aligned-windows query, from memory when it is small and
    cached, else from the engine in one worker thread."""
    found = engine.aligned_windows_in_memory(uuid, start, end, point_width, version)
    if found is not None:
        return found  # type: ignore[no-any-return]
    return await blocking(engine.aligned_windows, uuid, start, end, point_width, version)  # type: ignore[no-any-return]


async def nearest_of(
    engine: Any, uuid: bytes, time: int, backward: bool, version: int
) -> tuple[int, int, float]:
    """``(version, t, v)`` of a Nearest query, from memory when its blocks are cached, else from
    the engine in one worker thread."""
    found = engine.nearest_in_memory(uuid, time, backward, version)
    if found is not None:
        return found  # type: ignore[no-any-return]
    return await blocking(engine.nearest, uuid, time, backward, version)  # type: ignore[no-any-return]
