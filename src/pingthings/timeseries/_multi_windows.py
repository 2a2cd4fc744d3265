"""The aligned windows of many streams in one call: the platform service's MultiAlignedWindows.

A StreamSet asking a thousand streams for a few windows each spends its time in a thousand calls'
overhead, on the client and on the server. Servers that offer ``pingthings.platform.v1.Platform``
with MultiAlignedWindows (the pingthings embedded server) answer all of them in one
server-streaming call. Whether a server offers it is learnt from its first answer: a stock BTrDB
server answers gRPC UNIMPLEMENTED, which is remembered per client, and the caller then uses the
per-stream AlignedWindows calls (:func:`multi_aligned_windows` returns None). So does a request
the server refuses as a whole with 421 (a server configured for fewer streams per request).

The results are exactly the per-stream path's: each stream's entries are decoded as
AlignedWindowsResponse messages into the same float64 stat Tables, and a stream's error is raised
as the error its own AlignedWindows call would raise, labelled with its uuid.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from uuid import UUID

import numpy as np
import pyarrow as pa

from pingthings._proto.pingthings.platform.v1 import MultiAlignedWindowsParams
from pingthings.timeseries._data_calls import concat_stat
from pingthings.timeseries._fanout import _label_error
from pingthings.timeseries._progress import Progress
from pingthings.timeseries._rpc import PLATFORM_SERVICE, CallTarget, call_stream
from pingthings.timeseries.async_stream import _finish
from pingthings.timeseries.exceptions import NotImplementedByServerError, raise_for_status
from pingthings.wire import arrow as wire_arrow
from pingthings.wire import points as wire_points
from pingthings.wire.protowire import LEN, VARINT, read_key, read_length, read_varint, skip_field

#: Most streams per request (the embedded server's default max_streams_per_request).
MAX_STREAMS_PER_CALL = 1024

_GRPC_UNIMPLEMENTED = 12
_WRONG_ARGS = 421
_METHOD = "MultiAlignedWindows"

#: Clients whose server answered UNIMPLEMENTED: they use the per-stream path from then on.
_unsupported: weakref.WeakSet[object] = weakref.WeakSet()


def offered(client: CallTarget) -> bool:
    """False once ``client``'s server is known not to offer MultiAlignedWindows, or when calls may
    go to proxies (those route stream by stream)."""
    return client not in _unsupported and not client.proxy_endpoints


def _entry_index(data: memoryview, pos: int, end: int) -> int:
    """The ``index`` (field 5) of one StreamWindows entry; the server writes it first."""
    while pos < end:
        field, wire_type, pos = read_key(data, pos, end)
        if field == 5 and wire_type == VARINT:
            return read_varint(data, pos, end)[0]
        pos = skip_field(data, pos, end, field, wire_type)
    return 0


class _Refused(Exception):
    """The server refused the request as a whole (the reply's own ``stat``)."""

    def __init__(self, code: int, msg: str) -> None:
        super().__init__(code, msg)
        self.code, self.msg = code, msg


_COLUMNS = ("time", "min", "mean", "max", "count", "stddev")


class _Collected:
    """The windows of one call's streams, joined: each column as one array per reply message
    (copied out of the message, whose buffer the transport may reuse), rows in stream order."""

    def __init__(self, streams: int) -> None:
        self.rows = [0] * streams
        self.columns: list[list[np.ndarray]] = [[] for _ in _COLUMNS]
        self.errors: dict[int, tuple[int, str]] = {}
        self.last = -1

    def add_message(self, decoded: list[tuple[int, wire_points.WindowsResult]]) -> None:
        parts: list[list[np.ndarray]] = [[] for _ in _COLUMNS]
        for index, w in decoded:
            if index < self.last:
                raise ValueError(f"{_METHOD} answered stream #{index} after stream #{self.last}")
            self.last = index
            if w.stat is not None:
                self.errors.setdefault(index, (w.stat.code, w.stat.msg))
                continue
            self.rows[index] += len(w.time)
            for part, name in zip(parts, _COLUMNS, strict=True):
                part.append(getattr(w, name))
        for column, part in zip(self.columns, parts, strict=True):
            if part:
                column.append(np.concatenate(part))

    def tables(self, schema: pa.Schema | None) -> list[pa.Table]:
        """One Table per stream, cast to ``schema`` once and sliced (no copy) per stream."""
        if not sum(self.rows):
            empty = _finish(concat_stat([]), schema)
            return [empty] * len(self.rows)
        joined = _finish(wire_arrow.stat_table(*(np.concatenate(c) for c in self.columns)), schema)
        offsets = np.concatenate(([0], np.cumsum(self.rows)))
        return [joined.slice(int(lo), n) for lo, n in zip(offsets[:-1], self.rows, strict=True)]


async def _one_call(
    client: CallTarget,
    uuids: Sequence[UUID],
    versions: Sequence[int],
    window: tuple[int, int, int],
    schema: pa.Schema | None,
    progress: Progress | None,
) -> list[pa.Table]:
    start, end, point_width = window
    request = MultiAlignedWindowsParams(
        uuids=[u.bytes for u in uuids],
        version_majors=list(versions),
        start=start,
        end=end,
        point_width=point_width,
    )
    collected = _Collected(len(uuids))
    async with call_stream(client, _METHOD, request, service=PLATFORM_SERVICE) as messages:
        async for payload in messages:
            done = collected.last
            collected.add_message(_decode_message(payload, len(uuids)))
            if progress is not None and collected.last > done:
                progress.update(collected.last - done)
    for index in sorted(collected.errors):
        code, msg = collected.errors[index]
        try:
            raise_for_status(code, msg)
        except Exception as exc:
            _label_error(exc, str(uuids[index]))
            raise
    return collected.tables(schema)


def _decode_message(payload: bytes | memoryview, streams: int) -> list[tuple[int, wire_points.WindowsResult]]:
    """The ``(index, windows)`` entries of one MultiAlignedWindowsResponse; raises for its ``stat``."""
    data = memoryview(payload)
    pos, size = 0, len(data)
    entries = []
    while pos < size:
        field, wire_type, pos = read_key(data, pos, size)
        if wire_type != LEN:
            pos = skip_field(data, pos, size, field, wire_type)
            continue
        lo, hi = read_length(data, pos, size, field)
        pos = hi
        if field == 1:
            stat = wire_points.decode_status(data[lo:hi])
            raise _Refused(stat.code, stat.msg)
        if field != 2:
            continue
        index = _entry_index(data, lo, hi)
        if not 0 <= index < streams:
            raise ValueError(f"{_METHOD} answered for stream #{index} of {streams}")
        entries.append((index, wire_points.decode_windows(data[lo:hi])))
    return entries


async def multi_aligned_windows(
    client: CallTarget,
    uuids: Sequence[UUID],
    versions: Sequence[int],
    start: int,
    end: int,
    point_width: int,
    schema: pa.Schema | None,
    progress: Progress | None = None,
) -> list[pa.Table] | None:
    """One stat Table per stream (in order, cast to ``schema`` as
    :meth:`~pingthings.timeseries.AsyncStream.aligned_windows` does), or None when the server
    lacks the RPC.

    Parameters
    ----------
    client
        The client every stream belongs to.
    uuids, versions
        The streams (distinct) and the version of each (0: latest).
    start, end, point_width
        As for AlignedWindows.
    schema
        The stat schema of the results (None: the server's float64).
    progress
        Told ``update(n)`` as streams are answered.

    Raises
    ------
    PingThingsError
        The first stream (in order) whose query failed, labelled ``stream <uuid>: ...``.
    """
    if not offered(client):
        return None
    tables: list[pa.Table] = []
    for lo in range(0, len(uuids), MAX_STREAMS_PER_CALL):
        hi = lo + MAX_STREAMS_PER_CALL
        try:
            window = (start, end, point_width)
            part = await _one_call(client, uuids[lo:hi], versions[lo:hi], window, schema, progress)
        except NotImplementedByServerError as exc:
            if exc.code != _GRPC_UNIMPLEMENTED or tables:
                raise
            _unsupported.add(client)
            return None
        except _Refused as refused:
            if refused.code == _WRONG_ARGS and not tables:
                return None  # e.g. a server whose max_streams_per_request is lower: stream by stream
            raise_for_status(refused.code, refused.msg)
        tables.extend(part)
    return tables
