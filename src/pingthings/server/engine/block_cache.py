"""A scan-resistant, byte-bounded cache of decoded blocks (the S3-FIFO policy).

A plain LRU lets one large read push out everything else: every block it touches becomes the most
recently used, so reading a long stream once evicts the small set of blocks that other reads keep
asking for. This cache keeps two FIFO queues and a ghost list instead (S3-FIFO, Yang et al.,
SOSP 2023; chosen over LRU and 2Q by measurement, see ``bench/cache_policy.py``):

* a new block enters the **small** queue (its target is a tenth of the budget, but it may use any
  room the main queue leaves free, so a cache that is not full evicts nothing);
* when the small queue must give room, its oldest block moves to the **main** queue if it was read
  again since it came in, and otherwise leaves, with only its address remembered in the **ghost**
  list;
* a block whose address is in the ghost list (read once, evicted, read again) enters the main queue
  directly;
* the main queue evicts its oldest block unless that block was read since it was last looked at; then
  it gets another round (a per-block counter of up to three reads, one spent per round).

A read hit costs one dict lookup and a counter increment (no reordering, unlike LRU's move to the
end). One large read that is never repeated passes through the small queue alone, so the blocks that
are read again and again stay.

Memory: blocks decoded in one batch may be views of the batch's arrays (see
:meth:`~.blocks.BlockReader._keep`). When such a block survives an eviction round (moved to the main
queue or given another round there) it is replaced by a private copy first, so a block kept for a
long time never holds its whole batch in memory.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable

#: Share of the budget the small queue evicts down to when the cache is full.
SMALL_SHARE = 0.1
#: Highest value of a block's read counter (reads beyond it earn no further rounds).
MAX_FREQ = 3
#: Fewest addresses the ghost list may remember, however few blocks the cache holds.
MIN_GHOSTS = 1024


class _Entry:
    """One cached block: its value, its charged size in bytes and its read counter."""

    __slots__ = ("freq", "value", "weight")

    def __init__(self, value: object, weight: int) -> None:
        self.value = value
        self.weight = weight
        self.freq = 0


def _unchanged(value: object) -> object:
    return value


class BlockCache:
    """A thread-safe S3-FIFO map from block address to decoded block, bounded by a size in bytes.

    Parameters
    ----------
    capacity
        Most bytes of decoded blocks to hold; 0 disables caching. An entry larger than the whole budget
        is never stored.
    keep
        Called on a block's value when the block survives an eviction round; returns the value to keep
        (the block reader passes one that turns a view of a decode batch into a private copy).

    Attributes
    ----------
    hits, misses
        Lookups (:meth:`get`, :meth:`get_many`) that found, or did not find, their block.
    promotions
        Blocks moved from the small queue to the main queue because they were read again.
    ghost_hits
        Blocks admitted straight into the main queue because their address was in the ghost list.
    """

    def __init__(self, capacity: int, keep: Callable[[object], object] = _unchanged) -> None:
        if capacity < 0:
            raise ValueError(f"cache size must not be negative, got {capacity}")
        self.capacity = int(capacity)
        self.small_target = int(self.capacity * SMALL_SHARE)
        self.hits = 0
        self.misses = 0
        self.promotions = 0
        self.ghost_hits = 0
        self._keep = keep
        self._small: OrderedDict[int, _Entry] = OrderedDict()
        self._main: OrderedDict[int, _Entry] = OrderedDict()
        self._ghost: OrderedDict[int, None] = OrderedDict()
        self._small_weight = 0
        self._main_weight = 0
        self._lock = threading.Lock()

    @property
    def weight(self) -> int:
        """Bytes charged for the blocks held now."""
        return self._small_weight + self._main_weight

    def __len__(self) -> int:
        return len(self._small) + len(self._main)

    def _find(self, key: int) -> _Entry | None:
        entry = self._small.get(key)
        return self._main.get(key) if entry is None else entry

    def get(self, key: int) -> object | None:
        """The entry for ``key`` (its read counter raised), or None."""
        with self._lock:
            entry = self._find(key)
            if entry is None:
                self.misses += 1
                return None
            self.hits += 1
            if entry.freq < MAX_FREQ:
                entry.freq += 1
            return entry.value

    def get_many(self, keys: Iterable[int]) -> dict[int, object]:
        """Entries for those of ``keys`` that are cached, under one lock acquisition."""
        out: dict[int, object] = {}
        with self._lock:
            small, main = self._small, self._main
            for k in keys:
                entry = small.get(k) or main.get(k)
                if entry is None:
                    self.misses += 1
                    continue
                self.hits += 1
                if entry.freq < MAX_FREQ:
                    entry.freq += 1
                out[k] = entry.value
        return out

    def holds_all(self, keys: Iterable[int]) -> bool:
        """Whether every one of ``keys`` is cached (counters and hit figures are left as they are)."""
        with self._lock:
            small, main = self._small, self._main
            return all(k in small or k in main for k in keys)

    def put(self, key: int, value: object, weight: int) -> None:
        """Store ``value`` under ``key``, evicting as the policy says to stay within the budget."""
        self.put_many([(key, value, weight)])

    def put_many(self, items: Iterable[tuple[int, object, int]]) -> None:
        """Store many ``(key, value, weight)`` entries, in order, under one lock acquisition."""
        with self._lock:
            for key, value, weight in items:
                if weight <= self.capacity:
                    self._put(key, value, weight)

    def _put(self, key: int, value: object, weight: int) -> None:
        """:meth:`put` with the lock held."""
        entry = self._find(key)
        if entry is not None:  # replaced in place (same queue, same counter)
            if key in self._small:
                self._small_weight += weight - entry.weight
            else:
                self._main_weight += weight - entry.weight
            entry.value, entry.weight = value, weight
        elif key in self._ghost:  # read once, evicted, wanted again: main queue
            del self._ghost[key]
            self.ghost_hits += 1
            self._main[key] = _Entry(value, weight)
            self._main_weight += weight
        else:
            self._small[key] = _Entry(value, weight)
            self._small_weight += weight
        while self._small_weight + self._main_weight > self.capacity:
            if self._small_weight > self.small_target or not self._main:
                self._evict_small()
            else:
                self._evict_main()

    def _evict_small(self) -> None:
        """Move the oldest block of the small queue to the main queue (read again) or the ghost list."""
        key, entry = self._small.popitem(last=False)
        self._small_weight -= entry.weight
        if entry.freq > 0:
            entry.freq = 0
            entry.value = self._keep(entry.value)
            self._main[key] = entry
            self._main_weight += entry.weight
            self.promotions += 1
            return
        self._ghost[key] = None
        while len(self._ghost) > max(MIN_GHOSTS, len(self._main) + len(self._small)):
            self._ghost.popitem(last=False)

    def _evict_main(self) -> None:
        """Drop the oldest block of the main queue, or give it another round if it was read since."""
        key, entry = self._main.popitem(last=False)
        if entry.freq > 0:
            entry.freq -= 1
            entry.value = self._keep(entry.value)
            self._main[key] = entry
            return
        self._main_weight -= entry.weight

    def values(self) -> list[tuple[int, object]]:
        """A snapshot of the ``(key, value)`` entries: the small queue, then the main queue, oldest first."""
        with self._lock:
            return [(k, e.value) for q in (self._small, self._main) for k, e in q.items()]

    def drop_range(self, lo: int, hi: int) -> None:
        """Remove every entry (and ghost) whose key lies in ``[lo, hi]``."""
        with self._lock:
            for k in [k for k in self._small if lo <= k <= hi]:
                self._small_weight -= self._small.pop(k).weight
            for k in [k for k in self._main if lo <= k <= hi]:
                self._main_weight -= self._main.pop(k).weight
            for k in [k for k in self._ghost if lo <= k <= hi]:
                del self._ghost[k]

    def clear(self) -> None:
        """Remove every entry and forget every ghost."""
        with self._lock:
            self._small.clear()
            self._main.clear()
            self._ghost.clear()
            self._small_weight = self._main_weight = 0

    def stats(self) -> dict[str, int]:
        """Figures of the cache: bytes held, budget, entries, hits, misses and the policy's counters."""
        with self._lock:
            return {
                "bytes": self._small_weight + self._main_weight,
                "capacity": self.capacity,
                "entries": len(self._small) + len(self._main),
                "hits": self.hits,
                "misses": self.misses,
                "small_bytes": self._small_weight,
                "main_bytes": self._main_weight,
                "ghosts": len(self._ghost),
                "promotions": self.promotions,
                "ghost_hits": self.ghost_hits,
            }
