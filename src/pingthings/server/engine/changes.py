"""Changes between two versions: bucket ranges whose data may differ.

The walk starts at the newer version's root and enters only slots stamped with a generation newer than
``from_version``. A changed slot is reported whole when it is empty (deleted), a leaf, or narrower than
``2**resolution``; otherwise the walk descends. Ranges are then widened to multiples of ``2**resolution``
(clamped to the time axis), sorted and coalesced.
"""

from __future__ import annotations

import numpy as np

from pingthings.server.engine.blocks import BlockReader
from pingthings.server.engine.layout import PW_STEP, ROOT_PW, ROOT_START
from pingthings.wire.limits import MIN_TIME, TIME_LIMIT


def changed_ranges(
    reader: BlockReader, root: int, from_version: int, resolution: int
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted, disjoint, coalesced ``(starts, ends)`` of buckets changed after ``from_version``."""
    ranges: list[tuple[int, int]] = []
    frontier = [(root, ROOT_PW, ROOT_START)] if root else []
    while frontier:
        nodes = reader.nodes([a for a, _, _ in frontier])
        nxt: list[tuple[int, int, int]] = []
        for (_, pw, start), node in zip(frontier, nodes, strict=True):
            width = 1 << pw
            for i in np.flatnonzero(node.gen > from_version).tolist():
                bs = start + i * width
                child = int(node.addr[i])
                if child == 0 or node.leaf[i] or pw <= resolution:
                    ranges.append((bs, bs + width))
                else:
                    nxt.append((child, pw - PW_STEP, bs))
        frontier = nxt
    return coalesce(ranges, resolution)


def coalesce(ranges: list[tuple[int, int]], resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """Align ranges outward to ``2**resolution`` within the time axis, sort and merge touching ones."""
    mask = (1 << resolution) - 1
    aligned = sorted((max(MIN_TIME, s & ~mask), min(TIME_LIMIT, (e + mask) & ~mask)) for s, e in ranges)
    starts: list[int] = []
    ends: list[int] = []
    for s, e in aligned:
        if ends and s <= ends[-1]:
            ends[-1] = max(ends[-1], e)
        else:
            starts.append(s)
            ends.append(e)
    return np.array(starts, dtype=np.int64), np.array(ends, dtype=np.int64)
