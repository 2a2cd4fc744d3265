"""Put the blocks a read sent encoded into the decoded-block cache afterwards, in the background.

A RawBlocks read (see :mod:`.stored_reads`) sends the blocks it finds uncached as stored and leaves
the decoding to the client, so it fills no cache. A second read of the same range would then be
cold again, where the other raw reads make it warm. Decoding the sent blocks for the cache while the
read is under way costs the server's sender the GIL and the machine a core while the client decodes:
measured on 2 x 10^6 points, 15.6 against 31.4 Mpt/s for the cold read. So the blocks are decoded
after the read handed out its last message, by one background thread per engine, as the cache
admits them (same rule as the other reads: a read larger than the cache is not admitted).

While a read is served from the cache (the warm path, in the server's event loop) the thread waits
before a batch of byte-plane blocks (block format 4 and older), up to :data:`MAX_PAUSE` seconds at a
time: their decode is dozens of numpy calls that hold the GIL, and sharing it slowed such reads
several times (two 10^7-point streams read A B A B: the second reads ran at 35-55 against ~100
Mpt/s). Batches of pco blocks (format 5) are decoded at once: pcodec releases the GIL while it
decodes, and waiting had left B's blocks uncached when B was read again right after A (B's second
read ran at 35-41 Mpt/s, a cold read's speed, against 57-94 for A's).

While several reads that miss the cache are under way at once (a StreamSet read, whose streams
the read gate produces two at a time) the thread also waits, up to :data:`MAX_PAUSE` seconds at a
time, and :data:`CROWD_LINGER` seconds more once they thin out (between two of the set's streams):
those reads already keep every core busy, and the blocks of the set's first streams are better
decoded after the set is sent than against its last streams. A lone cold read does not stop
it: in A B A B, A's blocks must be decoded while B is read for the first time.

Bounds: the thread holds at most ``max_pending`` bytes of encoded blocks waiting to be decoded;
a read whose blocks do not fit is not admitted (the cache is an optimisation). Blocks are immutable
and addresses never reused, so a block decoded late is still the block its address names.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

from pingthings.server.engine.blocks import BATCH_POINTS, BlockReader
from pingthings.wire.blocks.leaf_codec import LeafView, decodes_without_gil

log = logging.getLogger(__name__)

#: Longest wait for reads served from the cache before a batch is decoded anyway (seconds).
MAX_PAUSE = 1.0
#: Cold reads under way at once from which the thread waits before each batch.
CROWD = 2
#: Seconds the thread goes on waiting after such a crowd thins out: a StreamSet read's next stream
#: starts a moment after one ends, and each of those moments let one batch through.
CROWD_LINGER = 0.25
#: Most blocks decoded per batch (batches also stop at BATCH_POINTS points, as a read's do).
BATCH = 128


class LateAdmission:
    """One background thread that decodes sent blocks into ``reader``'s cache.

    Parameters
    ----------
    reader
        The block reader whose cache receives the blocks.
    max_pending
        Most bytes of encoded blocks waiting at once.
    """

    def __init__(self, reader: BlockReader, max_pending: int) -> None:
        self._reader = reader
        self._max_pending = max_pending
        self._jobs: deque[tuple[list[int], dict[int, bytes]]] = deque()
        self._waiting: dict[int, int] = {}  # address -> bytes, of every queued block not yet decoded
        self._pending = 0
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._serving = 0
        self._cold = 0
        self._crowd_until = 0.0  # monotonic time until which a crowd that thinned out still counts

    def submit(self, addrs: list[int], raw: dict[int, bytes]) -> bool:
        """Queue the blocks ``addrs`` (their bytes in ``raw``); False if they were not taken.

        Blocks already queued are left out (a read that sent them again while they waited), and so
        are repeats (a block referenced by two runs of a read)."""
        with self._wake:
            addrs = [a for a in dict.fromkeys(addrs) if a not in self._waiting]
            size = sum(len(raw[a]) for a in addrs)
            if self._closed or not addrs or self._pending + size > self._max_pending:
                return False
            self._jobs.append((addrs, raw))
            self._waiting.update((a, len(raw[a])) for a in addrs)
            self._pending += size
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="late-admission", daemon=True)
                self._thread.start()
            self._wake.notify()
        return True

    def waiting(self, addrs: list[int]) -> list[int]:
        """Those of the blocks ``addrs`` that are queued and not decoded yet."""
        with self._wake:
            if not self._waiting:
                return []
            return [a for a in addrs if a in self._waiting]

    def taken(self, addrs: list[int]) -> None:
        """A read decoded the blocks ``addrs`` into the cache itself: the thread skips them."""
        with self._wake:
            for a in addrs:
                size = self._waiting.pop(a, None)
                if size is not None:
                    self._pending -= size
            self._wake.notify_all()

    @contextmanager
    def serving(self) -> Iterator[None]:
        """Mark a read served from the cache as under way: the thread waits between batches
        until no such read is (a warm read is a few memory copies and a send; sharing the GIL
        with a decode would slow it down several times)."""
        with self._wake:
            self._serving += 1
        try:
            yield
        finally:
            with self._wake:
                self._serving -= 1
                self._wake.notify_all()

    @contextmanager
    def cold_reading(self) -> Iterator[None]:
        """Mark a read that misses the cache as under way (see the module's description)."""
        with self._wake:
            self._cold += 1
        try:
            yield
        finally:
            with self._wake:
                if self._cold >= CROWD:
                    self._crowd_until = time.monotonic() + CROWD_LINGER
                self._cold -= 1
                self._wake.notify_all()

    def idle(self, timeout: float | None = None) -> bool:
        """Wait until nothing is queued or being decoded; whether that happened within ``timeout``."""
        with self._wake:
            return self._wake.wait_for(lambda: self._pending == 0, timeout)

    def _run(self) -> None:
        while True:
            with self._wake:
                self._wake.wait_for(lambda: self._closed or bool(self._jobs))
                if self._closed:
                    return
                addrs, raw = self._jobs.popleft()
            try:
                self._admit(addrs, raw)
            except Exception:  # an optimisation failed: the reads stay correct
                log.exception("late admission of %d blocks failed", len(addrs))
            finally:
                self.taken(addrs)  # whatever is left of the job

    def _admit(self, addrs: list[int], raw: dict[int, bytes]) -> None:
        """Decode the blocks not cached meanwhile, in batches of about BATCH_POINTS points (at most
        BATCH blocks); a block a read decoded itself in the meantime is skipped."""
        cached = self._reader.cache.get_many(addrs)
        batch: list[int] = []
        views: list[LeafView] = []
        points = 0
        for a in addrs:
            if a in cached:
                continue
            view = LeafView(raw[a])
            batch.append(a)
            views.append(view)
            points += view.size
            if points >= BATCH_POINTS or len(batch) >= BATCH:
                if not self._decode(batch, raw, views):
                    return
                batch, views, points = [], [], 0
        if batch:
            self._decode(batch, raw, views)

    def _decode(self, batch: list[int], raw: dict[int, bytes], views: list[LeafView]) -> bool:
        """Decode the blocks of ``batch`` still waiting, once no cached read is served; False once
        closed."""
        if not self._wait_for_reads(not decodes_without_gil(views)):
            return False
        with self._wake:
            keep = [k for k, a in enumerate(batch) if a in self._waiting]
        if keep:
            kept = [batch[k] for k in keep]
            self._reader.decode_encoded(kept, raw, True, [views[k] for k in keep])
            self.taken(kept)
        for a in batch:
            raw.pop(a, None)  # the bytes held are those still waiting
        return True

    def _wait_for_reads(self, warm: bool) -> bool:
        """Wait while :data:`CROWD` or more cold reads are under way (and for
        :data:`CROWD_LINGER` seconds after), and when ``warm`` also while reads are served from the
        cache, at most MAX_PAUSE seconds in a row; False once closed."""
        deadline = time.monotonic() + MAX_PAUSE
        with self._wake:
            while not self._closed:
                now = time.monotonic()
                if now >= deadline:
                    break
                if (warm and self._serving) or self._cold >= CROWD:
                    self._wake.wait(deadline - now)
                elif now < self._crowd_until:
                    self._wake.wait(min(deadline, self._crowd_until) - now)
                else:
                    break
            return not self._closed

    def close(self) -> None:
        """Stop the thread (blocks still queued are dropped)."""
        with self._wake:
            self._closed = True
            self._jobs.clear()
            self._waiting.clear()
            self._pending = 0
            self._wake.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=10)
