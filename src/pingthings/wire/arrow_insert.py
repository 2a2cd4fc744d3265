"""ArrowInsert payloads of a few thousand points, written and read without building Arrow tables.

An IPC stream of ``n`` rows in :data:`~pingthings.wire.arrow.RAW_SCHEMA` with no nulls is always
the same bytes around the two columns' data: the schema message, the record batch's metadata (whose
lengths and offsets depend only on ``n``), the padding between the columns and the end marker.
:func:`frame` asks pyarrow once per row count for that stream and keeps the bytes around the data;
then

* :func:`encode` joins them with the arrays' own bytes (a 120-point payload costs a few
  microseconds instead of the 20 µs of a pyarrow Table and stream writer), and
* :func:`decode` recognises a payload made that way by comparing those bytes, and views the
  columns with numpy (no IPC reader, no casts).

Anything else (other row counts, other schemas, nulls, several batches, compression, another
writer's metadata) is not recognised and goes through pyarrow (see ``pingthings.wire.arrow``), so
the result is the same either way, only cheaper for the common case.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from pingthings.wire import arrow as wire_arrow

#: Largest row count written or read this way; larger inserts go through pyarrow, which costs
#: little next to their data.
MAX_ROWS = 4096
#: Row counts whose framing is kept (least recently used first out).
FRAMES_KEPT = 64


class Frame(NamedTuple):
    """The bytes of an ``n``-row RAW_SCHEMA IPC stream around its two data buffers."""

    head: bytes
    between: bytes
    tail: bytes
    #: ``len(head) + len(between) + len(tail)``: a payload's bytes besides its data.
    fixed: int

    def size(self, rows: int) -> int:
        """Length of a whole payload of ``rows`` rows."""
        return self.fixed + 16 * rows


def _sample(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Times and values whose bytes occur nowhere else in a stream (distinct for each seed)."""
    times = (np.int64(0x5A5A_0000_0000_0000) + np.int64(seed << 40)) + np.arange(rows, dtype=np.int64)
    values = np.arange(rows, dtype=np.float64) * 1.000_000_1 + 12_345.678 + seed
    return times, values


@functools.lru_cache(maxsize=FRAMES_KEPT)
def frame(rows: int) -> Frame | None:
    """The framing of an ``rows``-row payload as pyarrow writes it, or None when it cannot be
    split around the data (then every payload of that size goes through pyarrow)."""
    if not 1 <= rows <= MAX_ROWS:
        return None
    times, values = _sample(rows, 1)
    stream = wire_arrow.table_to_ipc(wire_arrow.raw_table(times, values))
    t_at = stream.find(times.tobytes())
    v_at = stream.find(values.tobytes())
    if t_at < 0 or v_at < t_at + 8 * rows:
        return None
    head, between, tail = stream[:t_at], stream[t_at + 8 * rows : v_at], stream[v_at + 8 * rows :]
    found = Frame(head, between, tail, len(head) + len(between) + len(tail))
    # The framing must not depend on the data: another sample has to come out the same.
    times, values = _sample(rows, 2)
    if wire_arrow.table_to_ipc(wire_arrow.raw_table(times, values)) != _join(found, times, values):
        return None
    return found


def _join(found: Frame, times: np.ndarray, values: np.ndarray) -> bytes:
    return b"".join((found.head, times.tobytes(), found.between, values.tobytes(), found.tail))


def encode(times: np.ndarray, values: np.ndarray) -> bytes:
    """An ArrowInsert payload (IPC stream in RAW_SCHEMA) of int64 ns ``times`` and float64 ``values``.

    Both must be one-dimensional and of equal length (the insert path has checked them).
    """
    rows = len(times)
    found = frame(rows) if rows <= MAX_ROWS else None
    times = np.ascontiguousarray(times, dtype="<i8")
    values = np.ascontiguousarray(values, dtype="<f8")
    if found is None:
        return wire_arrow.table_to_ipc(wire_arrow.raw_table(times, values))
    return _join(found, times, values)


def decode(payload: bytes | memoryview) -> tuple[np.ndarray, np.ndarray] | None:
    """``(times, values)`` viewing a payload written in the framing :func:`encode` uses, or None
    when the payload is not one (read it with pyarrow then). The arrays are read-only views."""
    extra = len(payload) - _FIXED
    if extra <= 0 or extra % 16:
        return None
    rows = extra // 16
    if rows > MAX_ROWS:  # asked before the cache, which keeps only row counts that may match
        return None
    found = frame(rows)
    if found is None or found.fixed != _FIXED:  # the payload is _FIXED + 16 * rows bytes long
        return None
    head, between, tail = len(found.head), len(found.between), len(found.tail)
    t_end = head + 8 * rows
    v_at = t_end + between
    if isinstance(payload, bytes):  # compared in place, without a slice
        framed = (
            payload.startswith(found.head)
            and payload.startswith(found.between, t_end)
            and payload.endswith(found.tail)
        )
    else:
        data = memoryview(payload)
        framed = (
            data[:head] == found.head
            and data[t_end:v_at] == found.between
            and data[len(payload) - tail :] == found.tail
        )
    if not framed:
        return None
    return (
        np.frombuffer(payload, dtype="<i8", count=rows, offset=head),
        np.frombuffer(payload, dtype="<f8", count=rows, offset=v_at),
    )


def _fixed_size() -> int:
    """Bytes of a payload besides its data (the same for every row count, checked at import)."""
    one, two = frame(1), frame(2)
    if one is None or two is None or one.size(0) != two.size(0):
        return -1  # never matches: every payload goes through pyarrow
    return one.size(0)


_FIXED = _fixed_size()
