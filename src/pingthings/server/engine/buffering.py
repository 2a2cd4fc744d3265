"""Buffered ingest: the settings, one stream's buffer, and the thread that merges old buffers.

Small inserts are cheap to journal and expensive to commit (a commit rewrites the tail leaf and
its path). So with buffering on, an insert appends its points to the stream's buffer and to the
journal, and the buffer is merged into the tree as one version later: when the next insert would
take it past ``max_points``, when its oldest point has waited its merge age (see below), when all
buffers together pass ``max_bytes``, on Flush, Delete, Obliterate and close, and when a read needs
it.

Merge age: a stream's buffer is merged between ``0.75 * max_age`` and ``max_age`` after its first
insert, at a point fixed per stream by a hash of its uuid (:func:`merge_age`). Streams that start
together (a server with 1,000 PMUs after a restart) would otherwise all reach ``max_age`` in the
same second, and their 1,000 merges in one burst held the interpreter long enough to push the p99
acknowledgement of the inserts meanwhile to 95-124 ms (``bench/live_ingest.py --streams 1000
--buffer-age 5 --duration 15``; 15-34 ms spread like this, 31 ms with no age merge in the run).
Each stream keeps its place in the window from one buffer to the next, and the merging thread
looks every :func:`merge_period`.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from pingthings.server.engine.merge import MergePolicy


@dataclass(frozen=True)
class Buffering:
    """When buffered inserts are merged into the tree.

    Attributes
    ----------
    max_points
        Most points one stream's buffer holds; an insert that would pass it merges the buffer
        first, and an insert at least this large is committed directly.
    max_age
        Seconds after the first buffered insert by which a buffer is merged by the background
        thread (each stream's buffer at its own point of the last quarter, see :func:`merge_age`).
    max_bytes
        Bytes of buffered points (16 a point) of all streams together; past it the oldest buffers
        are merged. This also bounds the journal's live records.
    """

    max_points: int = 32_768
    max_age: float = 30.0
    max_bytes: int = 32 << 20

    def __post_init__(self) -> None:
        if not isinstance(self.max_points, int) or self.max_points < 1:
            raise ValueError(f"max_points must be a positive integer, got {self.max_points!r}")
        if not self.max_age > 0:
            raise ValueError(f"max_age must be a positive number of seconds, got {self.max_age!r}")
        if not isinstance(self.max_bytes, int) or self.max_bytes < 16:
            raise ValueError(f"max_bytes must be an integer of at least 16, got {self.max_bytes!r}")


@dataclass(frozen=True)
class GroupInsert:
    """One insert of a group handed to ``Engine.insert_group`` (the arguments of ``Engine.insert``)."""

    uuid: Any
    times: Any
    values: Any
    merge: MergePolicy | int = MergePolicy.NEVER
    round_bits: int | None = None


#: The settings a server uses unless told otherwise.
DEFAULT_BUFFERING = Buffering()
#: Share of ``max_age`` over which the merges of streams born together are spread (a wider spread
#: makes smaller merges: more versions and more disk per point).
MERGE_SPREAD = 0.25


def merge_age(uuid: bytes, max_age: float) -> float:
    """Seconds after its first insert at which the buffer of stream ``uuid`` is merged by age:
    within ``(max_age * (1 - MERGE_SPREAD), max_age]``, the same for the stream every time."""
    share = zlib.crc32(uuid) / 2**32
    return max_age * (1.0 - MERGE_SPREAD * share)


def merge_period(max_age: float) -> float:
    """How often the merging thread looks for buffers due: 1/40 of ``max_age`` (so the merges of a
    spread window fall into about 20 looks), within 10–100 ms."""
    return min(0.1, max(0.01, max_age / 40))


class StreamBuffer:
    """The buffered inserts of one stream, all bound for one pending version.

    Parameters
    ----------
    version
        The version the merge will commit.
    policy
        The merge policy shared by every buffered insert.
    wall
        Wall-clock time (ns) of the first insert: the merged version is stamped with it, so the
        version current at any wall time holds every point acknowledged by then.
    """

    __slots__ = ("born", "points", "policy", "times", "values", "version", "wall")

    def __init__(self, version: int, policy: MergePolicy, wall: int) -> None:
        self.version = version
        self.wall = wall
        self.policy = policy
        self.times: list[np.ndarray] = []
        self.values: list[np.ndarray] = []
        self.points = 0
        self.born = time.monotonic()

    def add(self, times: np.ndarray, values: np.ndarray) -> None:
        """Append one prepared insert (sorted, duplicates resolved within it)."""
        self.times.append(times)
        self.values.append(values)
        self.points += int(times.size)

    @property
    def nbytes(self) -> int:
        """Bytes of buffered points."""
        return 16 * self.points

    def joined(self) -> tuple[np.ndarray, np.ndarray]:
        """All buffered points in arrival order (one insert after another)."""
        if len(self.times) == 1:
            return self.times[0], self.values[0]
        return np.concatenate(self.times), np.concatenate(self.values)


class AgeMerger(threading.Thread):
    """Calls ``merge_old(max_age)`` every :func:`merge_period` until stopped.

    Parameters
    ----------
    max_age
        The age in seconds by which buffers are merged.
    merge_old
        Merges every buffer that has reached its :func:`merge_age` (errors are its own to handle).
    """

    def __init__(self, max_age: float, merge_old: Callable[[float], None]) -> None:
        super().__init__(name="pingthings-ingest-merger", daemon=True)
        self._period = merge_period(max_age)
        self._max_age = max_age
        self._merge_old = merge_old
        self._stopping = threading.Event()

    def stop(self) -> None:
        """End the thread (after the merge in progress, if any)."""
        self._stopping.set()
        if self.is_alive():
            self.join()

    def run(self) -> None:
        while not self._stopping.wait(self._period):
            self._merge_old(self._max_age)
