"""A server-wide bound on how many threads produce streamed read replies at the same moment.

Every streaming read (RawValues, ArrowRawValues, ...) walks the engine in its own worker thread (see
:mod:`.prefetch`). Their work is mostly Python and numpy under the GIL, so sixteen concurrent reads on a
two-core machine do not run faster than two: they only make sixteen threads trade the GIL back and
forth, each switch costing a wake-up and cold caches. The gate lets ``slots`` workers compute at once and
queues the others. A worker holds a slot only while it computes one item (one engine chunk and its
encoding), never while it waits for a slow client, so a stalled reader cannot starve the others.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager


def default_read_workers() -> int:
    """Slots used when none are configured: the number of CPU cores this process may use."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 2
    return max(2, cores)


class ReadGate:
    """A counting gate shared by all streaming reads of one server.

    Parameters
    ----------
    slots
        Most workers computing at once (default: :func:`default_read_workers`).
    """

    def __init__(self, slots: int | None = None) -> None:
        n = default_read_workers() if slots is None else int(slots)
        if n < 1:
            raise ValueError(f"a read gate needs at least one slot, got {n}")
        self.slots = n
        self._sem = threading.BoundedSemaphore(n)
        self._count_lock = threading.Lock()
        self._busy = 0

    @property
    def busy(self) -> int:
        """How many slots are held right now."""
        return self._busy

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one slot for the duration of the ``with`` block (waiting for one if all are taken)."""
        self._sem.acquire()
        with self._count_lock:
            self._busy += 1
        try:
            yield
        finally:
            with self._count_lock:
                self._busy -= 1
            self._sem.release()
