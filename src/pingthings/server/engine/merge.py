"""Merge policies: what happens when inserted points share a timestamp with stored ones or each other.

* NEVER keeps every point (duplicate timestamps allowed).
* EQUAL drops an incoming point whose time and value bits equal a stored point or an earlier point of the
  same batch.
* RETAIN keeps the stored (or first) value for a timestamp and drops later ones.
* REPLACE keeps the newest value: the last one of the batch, which replaces every stored point at that time.

Among equal timestamps, points of earlier commits come first, and within a batch arrival order is kept.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

from pingthings.wire.point_checks import in_order


class MergePolicy(IntEnum):
    """How an insert treats points at timestamps that already hold data (values match v5api)."""

    NEVER = 0
    EQUAL = 1
    RETAIN = 2
    REPLACE = 3


def prepare_batch(
    times: np.ndarray, values: np.ndarray, policy: MergePolicy
) -> tuple[np.ndarray, np.ndarray]:
    """Sort a batch by time (stably) and resolve duplicates inside it according to ``policy``."""
    if in_order(times):
        # Sorted already, as most batches come: no sort and no gathers. Copied all the same, as the
        # gathers copy: the input may view a request's bytes, which buffered points must not pin.
        t, v = times.copy(), values.copy()
    else:
        order = np.argsort(times, kind="stable")
        t = times[order]
        v = values[order]
    if t.size < 2 or policy == MergePolicy.NEVER:
        return t, v
    same_as_next = t[1:] == t[:-1]
    if not same_as_next.any():
        return t, v
    if policy == MergePolicy.RETAIN:
        keep = np.concatenate(([True], ~same_as_next))
        return t[keep], v[keep]
    if policy == MergePolicy.REPLACE:
        keep = np.concatenate((~same_as_next, [True]))
        return t[keep], v[keep]
    # EQUAL: drop repeats of an identical (time, value-bits) pair, keep arrival order otherwise.
    bits = v.view(np.int64)
    idx = np.arange(t.size)
    by_pair = np.lexsort((idx, bits, t))
    tp, bp = t[by_pair], bits[by_pair]
    dup = np.concatenate(([False], (tp[1:] == tp[:-1]) & (bp[1:] == bp[:-1])))
    kept = np.sort(by_pair[~dup])
    return t[kept], v[kept]


def merge_points(
    old_t: np.ndarray, old_v: np.ndarray, new_t: np.ndarray, new_v: np.ndarray, policy: MergePolicy
) -> tuple[np.ndarray, np.ndarray]:
    """Merge a prepared batch into stored sorted points of one leaf, applying ``policy``."""
    if old_t.size == 0:
        return new_t, new_v
    if new_t.size == 0:
        return old_t, old_v
    if policy == MergePolicy.RETAIN:
        lo = np.searchsorted(old_t, new_t, side="left")
        hi = np.searchsorted(old_t, new_t, side="right")
        fresh = lo == hi
        new_t, new_v = new_t[fresh], new_v[fresh]
    elif policy == MergePolicy.REPLACE:
        lo = np.searchsorted(new_t, old_t, side="left")
        hi = np.searchsorted(new_t, old_t, side="right")
        survive = lo == hi
        old_t, old_v = old_t[survive], old_v[survive]
    elif policy == MergePolicy.EQUAL:
        lo = np.searchsorted(old_t, new_t, side="left")
        hi = np.searchsorted(old_t, new_t, side="right")
        maybe = np.flatnonzero(lo < hi)
        if maybe.size:
            old_bits = old_v.view(np.int64)
            new_bits = new_v.view(np.int64)
            drop = np.zeros(new_t.size, dtype=bool)
            for i in maybe.tolist():
                drop[i] = bool((old_bits[lo[i] : hi[i]] == new_bits[i]).any())
            new_t, new_v = new_t[~drop], new_v[~drop]
    if new_t.size == 0:
        return old_t, old_v
    if old_t.size == 0:
        return new_t, new_v
    # Stored points come before new ones at equal times: insert each new point after its equals.
    pos = np.searchsorted(old_t, new_t, side="right")
    return np.insert(old_t, pos, new_t), np.insert(old_v, pos, new_v)
