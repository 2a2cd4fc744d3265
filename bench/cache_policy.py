"""Which eviction policy for the decoded-block cache: LRU, 2Q or S3-FIFO, by hit ratio and cost.

Replays synthetic read traces (block addresses, each block weighing what a ~515-point leaf weighs
decoded) through three caches of the same byte budget and prints, for each trace, the share of
block reads served from the cache and the cost per block access (lookup plus admission; the
engine's cache takes a lock, the two written here for comparison do not):

* ``lru``: the previous policy (an ordered dict, most recently used at the end);
* ``2q``: the simplified 2Q of Johnson and Shasha (a FIFO for blocks seen once, 25 % of the budget,
  a ghost list of its evictions, an LRU for blocks seen again);
* ``s3fifo``: :class:`pingthings.server.engine.block_cache.BlockCache`, the policy the engine uses.

Traces (``--capacity`` blocks of budget):

* ``hot+scans``: a hot set (a third of the budget: dashboards re-reading recent data) read between
  one-time scans, each 80 % of the budget (analysis reading a day once);
* ``alternating``: two streams of 60 % of the budget each, read in turn (A B A B ...);
* ``zipf``: whole-stream reads of 200 streams of 5 % of the budget each, popularity Zipf(1.1);
* ``loop``: one stream of 120 % of the budget read over and over (a scan larger than the cache).

Example: ``python bench/cache_policy.py --capacity 20000``.
"""

from __future__ import annotations

import argparse
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator

import numpy as np

from pingthings.server.engine.block_cache import BlockCache

#: Bytes of one decoded block (515 points of 16 bytes plus the entry overhead).
BLOCK = 515 * 16 + 256


class LRU:
    """Least-recently-used, byte-bounded (the engine's former policy)."""

    def __init__(self, capacity: int) -> None:
        self.capacity, self.weight = capacity, 0
        self.items: OrderedDict[int, int] = OrderedDict()

    def get_many(self, keys: list[int]) -> dict[int, object]:
        out: dict[int, object] = {}
        for k in keys:
            if k in self.items:
                self.items.move_to_end(k)
                out[k] = k
        return out

    def put(self, key: int, value: object, weight: int) -> None:
        self.items[key] = weight
        self.weight += weight
        while self.weight > self.capacity:
            self.weight -= self.items.popitem(last=False)[1]


class TwoQ:
    """Simplified 2Q: A1in FIFO (25 %), A1out ghosts, Am LRU."""

    def __init__(self, capacity: int) -> None:
        self.capacity, self.in_target = capacity, capacity // 4
        self.a1in: OrderedDict[int, int] = OrderedDict()
        self.a1out: OrderedDict[int, None] = OrderedDict()
        self.am: OrderedDict[int, int] = OrderedDict()
        self.w_in = self.w_am = 0

    def get_many(self, keys: list[int]) -> dict[int, object]:
        out: dict[int, object] = {}
        for k in keys:
            if k in self.am:
                self.am.move_to_end(k)
                out[k] = k
            elif k in self.a1in:
                out[k] = k
        return out

    def put(self, key: int, value: object, weight: int) -> None:
        if key in self.a1out:
            del self.a1out[key]
            self.am[key] = weight
            self.w_am += weight
        else:
            self.a1in[key] = weight
            self.w_in += weight
        while self.w_in + self.w_am > self.capacity:
            if self.w_in > self.in_target or not self.am:
                k, w = self.a1in.popitem(last=False)
                self.w_in -= w
                self.a1out[k] = None
                while len(self.a1out) > max(1024, len(self.am) + len(self.a1in)):
                    self.a1out.popitem(last=False)
            else:
                self.w_am -= self.am.popitem(last=False)[1]


def hot_and_scans(cap: int, rounds: int) -> Iterator[list[int]]:
    hot = list(range(cap // 3))
    next_key = 10**9
    for _ in range(rounds):
        for _ in range(3):
            yield hot
        yield list(range(next_key, next_key + int(cap * 0.8)))
        next_key += cap


def alternating(cap: int, rounds: int) -> Iterator[list[int]]:
    size = int(cap * 0.6)
    for r in range(rounds * 2):
        base = (r % 2) * 10**9
        yield list(range(base, base + size))


def zipf(cap: int, rounds: int) -> Iterator[list[int]]:
    rng = np.random.default_rng(1)
    size = max(1, cap // 20)
    for s in rng.zipf(1.1, rounds * 100) % 200:
        yield list(range(int(s) * 10**7, int(s) * 10**7 + size))


def loop(cap: int, rounds: int) -> Iterator[list[int]]:
    for _ in range(rounds):
        yield list(range(int(cap * 1.2)))


TRACES: dict[str, Callable[[int, int], Iterator[list[int]]]] = {
    "hot+scans": hot_and_scans,
    "alternating": alternating,
    "zipf": zipf,
    "loop": loop,
}


def replay(cache: object, trace: Iterator[list[int]], batch: int = 128) -> tuple[float, float]:
    """Hit ratio and seconds per block access of ``trace`` through ``cache``."""
    hits = total = 0
    t0 = time.perf_counter()
    for read in trace:
        for lo in range(0, len(read), batch):
            keys = read[lo : lo + batch]
            found = cache.get_many(keys)  # type: ignore[attr-defined]
            hits += len(found)
            total += len(keys)
            missing = [(k, k, BLOCK) for k in keys if k not in found]
            if hasattr(cache, "put_many"):  # the engine's cache admits a batch under one lock
                cache.put_many(missing)
            else:
                for item in missing:
                    cache.put(*item)  # type: ignore[attr-defined]
    return hits / max(total, 1), (time.perf_counter() - t0) / max(total, 1)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--capacity", type=int, default=20_000, help="budget in blocks (default 20 000)")
    parser.add_argument("--rounds", type=int, default=10, help="repetitions of each trace's pattern")
    args = parser.parse_args()
    cap = args.capacity
    policies: dict[str, Callable[[int], object]] = {"lru": LRU, "2q": TwoQ, "s3fifo": BlockCache}
    print(f"budget {cap:,} blocks ({cap * BLOCK / 2**20:.0f} MiB); hit ratio, and µs per block access")
    print(f"{'trace':<12}" + "".join(f"{name:>22}" for name in policies))
    for name, trace in TRACES.items():
        cells = []
        for make in policies.values():
            ratio, cost = replay(make(cap * BLOCK), trace(cap, args.rounds))
            cells.append(f"{ratio * 100:8.1f} % {cost * 1e6:6.2f} µs")
        print(f"{name:<12}" + "".join(f"{c:>22}" for c in cells))


if __name__ == "__main__":
    main()
