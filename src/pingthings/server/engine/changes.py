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
    found_s: list[np.ndarray] = []
    found_e: list[np.ndarray] = []
    frontier = [(root, ROOT_PW, ROOT_START)] if root else []
    while frontier:
        nodes = reader.nodes([a for a, _, _ in frontier])
        nxt: list[tuple[int, int, int]] = []
        for (_, pw, start), node in zip(frontier, nodes, strict=True):
            idx = np.flatnonzero(node.gen > from_version)
            if idx.size == 0:
                continue
            bs = start + (idx << pw)
            descend = (node.addr[idx] != 0) & ~node.leaf[idx] & (pw > resolution)
            whole = bs[~descend]
            found_s.append(whole)
            found_e.append(whole + (1 << pw))
            nxt.extend(
                (a, pw - PW_STEP, b)
                for a, b in zip(node.addr[idx[descend]].tolist(), bs[descend].tolist(), strict=True)
            )
        frontier = nxt
    if not found_s:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    starts, ends = _merge(np.concatenate(found_s), np.concatenate(found_e))
    return coalesce(list(zip(starts.tolist(), ends.tolist(), strict=True)), resolution)


def _merge(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Union of ranges as sorted, disjoint ranges (touching ones merged)."""
    order = np.argsort(starts, kind="stable")
    s, e = starts[order], ends[order]
    reach = np.maximum.accumulate(e)
    gap = s[1:] > reach[:-1]
    return s[np.concatenate(([True], gap))], reach[np.concatenate((gap, [True]))]


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
