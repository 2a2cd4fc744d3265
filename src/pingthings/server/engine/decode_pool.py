"""Decode the batches of a cold read into arrays on every core while the caller waits for them.

A read that misses the block cache spends its time in SQLite fetches, LZ4 decompression and numpy
decoding, per batch of about a hundred blocks. Most of that work releases the GIL (SQLite steps,
LZ4 inside pyarrow, numpy's inner loops over large arrays), so batches decoded in other threads run
truly in parallel with each other and with the caller, which meanwhile cuts chunks, builds replies
or copies points out. :func:`ahead` runs each batch's job in a small process-wide pool (one thread
per core) and hands the results back in order, at most ``depth`` batches ahead of the caller, so the
memory a read holds stays bounded however fast the pool is.

Of the reads, only those into two preallocated arrays use it (``BlockReader.read_into``): there it
gains. A chunked read decodes in its own thread, because a chunk's consumer (the server's event loop,
a join) already works on the other core: measured, the pool only added thread wake-ups and GIL
hand-offs there (see ``BlockReader._pipelined``; with pco blocks it made the engine's chunked read
faster but the server's ArrowRawValues read slower). Writes use :func:`submit`: the tree writer
encodes large leaves here, since pcodec compresses with the GIL released (see ``tree._encoded``).
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

R = TypeVar("R")

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def decode_workers() -> int:
    """Threads of the decode pool: the CPU cores this process may use (at least 2)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 2
    return max(2, cores)


def _forget_pool_in_child() -> None:
    """After a fork the child has none of the pool's threads: make it start a pool of its own."""
    global _pool, _pool_lock
    _pool = None
    _pool_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_in_child)


def _shared_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(decode_workers(), thread_name_prefix="pingthings-decode")
        return _pool


def submit(fn: Callable[..., R], *args: object) -> Future[R]:
    """Run ``fn(*args)`` in the decode pool (for work that releases the GIL, such as pco encoding)."""
    return _shared_pool().submit(fn, *args)


def ahead(jobs: Iterable[Callable[[], R]], depth: int | None = None) -> Iterator[R]:
    """The results of ``jobs``, in order, each computed in the decode pool up to ``depth`` jobs early.

    Parameters
    ----------
    jobs
        Zero-argument callables; the next ones are submitted while the caller works on a result.
    depth
        Most jobs submitted but not yet handed back (default: :func:`decode_workers`).

    Raises
    ------
    Exception
        Whatever a job raised, when its result is reached. Closing the iterator early cancels the jobs
        that have not started; those running finish and their results are dropped.
    """
    limit = decode_workers() if depth is None else max(1, depth)
    pool = _shared_pool()
    pending: deque[Future[R]] = deque()
    try:
        for job in jobs:
            pending.append(pool.submit(job))
            if len(pending) > limit:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()
