"""Arrow RPCs of v5api.BTrDB: raw values, multi-stream values, windows and insert.

Every reply's ``arrowBytes`` is a complete Arrow IPC stream; an empty result is one message
holding the full schema and zero rows.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any
from uuid import UUID

import numpy as np
import pyarrow as pa

from pingthings._proto import v5api
from pingthings.server.engine.engine import RawChunks
from pingthings.server.errors import InvalidPointWidth, InvalidTimeRange, WrongArgs
from pingthings.server.service import arrow_io
from pingthings.server.service.arrow_reply import (
    MULTI_ARROW_BYTES_FIELD,
    Segments,
    arrow_reply,
    arrow_reply_segments,
    raw_pieces_reply,
)
from pingthings.server.service.convert import blocking, drain_chunks
from pingthings.server.service.fanout import distinct_streams
from pingthings.server.service.multi_join import MultiJoin
from pingthings.server.service.points import apply_insert
from pingthings.server.service.prefetch import chunk_replies, inline
from pingthings.server.service.read_ahead import ReadAhead, start_reads
from pingthings.server.service.stat_reads import aligned_windows_of
from pingthings.server.service.state import ServiceState
from pingthings.server.service.visibility import visible_uuid
from pingthings.server.service.window_slices import windows_in_slices
from pingthings.server.service.wire_check import decode_request
from pingthings.wire import arrow as wire_arrow
from pingthings.wire import arrow_insert
from pingthings.wire.insert_messages import ArrowInsertRequest, encode_insert_response, read_arrow_insert
from pingthings.wire.limits import MAX_POINT_WIDTH, MIN_TIME, TIME_LIMIT

#: Rows per Arrow reply message.
ROWS_PER_MESSAGE = 100_000
#: Rows per ArrowRawValues message (the engine's read chunk): big enough that per-message costs
#: vanish, small enough that reading the next chunk overlaps sending this one.
RAW_ROWS_PER_MESSAGE = 50_000

#: ArrowInsert payloads that pyarrow must read are read in the event loop up to this size, larger
#: ones in a worker thread (payloads in our clients' framing are read in the loop at any size).
SMALL_INSERT_BYTES = 16 << 10


class ArrowHandlers:
    """Handlers for the Arrow flavour of the point RPCs."""

    def __init__(self, state: ServiceState) -> None:
        self.state = state

    async def arrow_raw_values(
        self, request: v5api.ArrowRawValuesParams
    ) -> AsyncIterator[pa.Buffer | Segments]:
        """Stream the points in [start, end) as Arrow tables, cast to the template if one is given.

        A read served from memory (stream loaded, latest version, every block cached) starts and
        runs in the event loop, one message produced between sends; otherwise a worker thread
        finds the leaves and then reads and encodes the messages (engine chunk → reply segments)
        while the event loop sends the previous ones (see :mod:`.prefetch`).
        """
        uuid = visible_uuid(self.state.meta, request.uuid)
        template = arrow_io.read_template(request.template_bytes)
        args = (uuid, request.start, request.end, request.version_major, RAW_ROWS_PER_MESSAGE)
        engine = self.state.engine  # a read served from memory starts without a worker thread
        chunk_iter: RawChunks[Any]
        encode: Callable[[Any], pa.Buffer | Segments]
        if template is None:
            # The common case, no cast: each reply is made of the blocks' own memory.
            version, chunk_iter = engine.iter_raw_pieces_in_memory(*args) or await blocking(
                engine.iter_raw_pieces, *args, decode_ahead=False
            )

            def encode(chunk: Any) -> pa.Buffer | Segments:
                return raw_pieces_reply(version, *chunk)

        else:
            version, chunk_iter = engine.iter_raw_values_in_memory(*args) or await blocking(
                engine.iter_raw_values, *args, decode_ahead=False
            )

            def encode(chunk: Any) -> pa.Buffer | Segments:
                table = arrow_io.cast_to_template(arrow_io.raw_table(*chunk), template)
                return arrow_reply_segments(version, table)

        def empty() -> pa.Buffer:
            none = arrow_io.raw_table(np.empty(0, np.int64), np.empty(0, np.float64))
            return arrow_reply(version, arrow_io.cast_to_template(none, template))

        replies = chunk_replies(chunk_iter, encode, empty, self.state.read_gate)
        try:
            async for reply in replies:
                yield reply
        finally:
            await replies.aclose()

    async def _windows_replies(self, version: int, windows: Any) -> AsyncIterator[pa.Buffer]:
        # ArrowAlignedWindowsResponse and ArrowWindowsResponse share ArrowRawValuesResponse's layout.
        total = len(windows.time)
        for lo in range(0, max(total, 1), ROWS_PER_MESSAGE):
            yield arrow_reply(version, arrow_io.stat_table(windows, lo, min(total, lo + ROWS_PER_MESSAGE)))

    async def arrow_aligned_windows(self, request: v5api.AlignedWindowsParams) -> AsyncIterator[pa.Buffer]:
        """AlignedWindows as Arrow tables."""
        uuid = visible_uuid(self.state.meta, request.uuid)
        version, windows = await aligned_windows_of(
            self.state.engine, uuid, request.start, request.end, request.point_width, request.version_major
        )
        async for reply in self._windows_replies(version, windows):
            yield reply

    async def arrow_windows(self, request: v5api.WindowsParams) -> AsyncIterator[pa.Buffer]:
        """Windows as Arrow tables."""
        uuid = visible_uuid(self.state.meta, request.uuid)
        if request.width == 0:
            raise InvalidPointWidth("window width must be at least 1 ns")
        if request.depth > MAX_POINT_WIDTH:
            raise InvalidPointWidth(f"depth must be within 0..{MAX_POINT_WIDTH}")
        slices = windows_in_slices(
            self.state.engine, uuid, request.start, request.end, request.width, request.version_major
        )
        async for version, windows in slices:
            async for reply in self._windows_replies(version, windows):
                yield reply

    async def arrow_multi_values(
        self, request: v5api.ArrowMultiValuesParams
    ) -> AsyncIterator[pa.Buffer | Segments]:
        """Outer-join several streams' raw values on (optionally snapped) time."""
        uuids = [visible_uuid(self.state.meta, u) for u in request.uuid]
        if not uuids:
            raise WrongArgs("ArrowMultiValues needs at least one uuid")
        versions = list(request.version_major)
        if versions and len(versions) != len(uuids):
            raise WrongArgs(f"{len(uuids)} uuids but {len(versions)} versions")
        versions = versions or [0] * len(uuids)
        uuids, versions = distinct_streams(
            uuids, versions, self.state.max_streams_per_request, "ArrowMultiValues"
        )
        start, end, period = request.start, request.end, request.snap_period_ns
        if period < 0:
            raise WrongArgs("snapPeriodNs must not be negative")
        if start < MIN_TIME or end >= TIME_LIMIT:
            raise InvalidTimeRange(f"time range [{start}, {end}) is outside [{MIN_TIME}, {TIME_LIMIT})")
        if start >= end:
            raise InvalidTimeRange("start time >= end time")
        template = arrow_io.read_template(request.template_bytes)
        join = MultiJoin(len(uuids), start, end, period)
        query_start, query_end = join.query_range()
        query_start, query_end = max(MIN_TIME, query_start), min(TIME_LIMIT - 1, query_end)
        engine = self.state.engine
        readers: list[AsyncGenerator[tuple[np.ndarray, np.ndarray], None] | ReadAhead[Any]] = []
        for uuid, version in zip(uuids, versions, strict=True):
            if query_end <= query_start:  # no raw time can land in the range: read nothing, but
                await blocking(engine.latest_version, uuid)  # still check the stream
                readers.append(drain_chunks(iter(())))
                continue
            args = (uuid, query_start, query_end, version)
            in_memory = engine.iter_raw_values_in_memory(*args)
            if in_memory is not None:  # every chunk is a memory copy: no worker thread per chunk
                readers.append(inline(functools.partial(iter, in_memory[1])))
            else:
                _, chunk_iter = await blocking(engine.iter_raw_values, *args, decode_ahead=False)
                readers.append(ReadAhead(chunk_iter, self.state.read_gate))  # decoded one chunk ahead
        schema = pa.schema(
            [pa.field("time", arrow_io.TIME_TYPE, nullable=False)]
            + [pa.field(str(UUID(bytes=u)), pa.float64(), nullable=False) for u in uuids]
        )
        pending: list[tuple[np.ndarray, list[np.ndarray]]] = []
        pending_rows = 0
        sent = False
        try:
            while not join.exhausted:
                needs = join.needs()
                start_reads(readers[k] for k in needs)  # cold streams decode in parallel
                for k in needs:
                    chunk = await anext(readers[k], None)
                    if chunk is None:
                        join.finish(k)
                    else:
                        join.add(k, *chunk)
                times, columns = join.take()
                if len(times):
                    pending.append((times, columns))
                    pending_rows += len(times)
                if pending_rows >= ROWS_PER_MESSAGE:
                    yield self._multi_reply(schema, template, pending)
                    pending, pending_rows, sent = [], 0, True
        finally:
            for reader in readers:
                await reader.aclose()
        times, columns = join.take()
        if len(times):
            pending.append((times, columns))
        if pending or not sent:
            yield self._multi_reply(schema, template, pending)

    @staticmethod
    def _multi_reply(
        schema: pa.Schema, template: pa.Schema | None, parts: list[tuple[np.ndarray, list[np.ndarray]]]
    ) -> pa.Buffer | Segments:
        width = len(schema) - 1
        times = np.concatenate([p[0] for p in parts]) if parts else np.empty(0, np.int64)
        columns = [
            np.concatenate([p[1][i] for p in parts]) if parts else np.empty(0, np.float64)
            for i in range(width)
        ]
        arrays = [arrow_io.time_array(times), *(wire_arrow.float_array(c) for c in columns)]
        table = pa.Table.from_arrays(arrays, schema=schema)
        table = arrow_io.cast_to_template(table, template)
        return arrow_reply_segments(0, table, MULTI_ARROW_BYTES_FIELD)

    async def arrow_insert(self, data: bytes) -> bytes:
        """Insert the (time, value) table carried as an Arrow IPC stream.

        ``data`` is the ArrowInsertParams message; its plain shape is read by hand, anything else
        by the message class (see :mod:`pingthings.wire.insert_messages`); so is the reply.
        """
        request = read_arrow_insert(data) or _strict_arrow_insert(data)
        uuid = visible_uuid(self.state.meta, request.uuid)
        payload = request.arrow_bytes
        framed = arrow_insert.decode(payload)  # our clients' framing: numpy views, at any size
        if framed is not None:
            times, values = framed
        elif len(payload) <= SMALL_INSERT_BYTES:  # pyarrow costs less than a thread hop here
            times, values = arrow_io.read_insert_table(payload)
        else:
            times, values = await blocking(arrow_io.read_insert_table, payload)
        version = await apply_insert(
            self.state, uuid, times, values, request.merge_policy, request.rounding_bits
        )
        return encode_insert_response(version)


def _strict_arrow_insert(data: bytes) -> ArrowInsertRequest:
    """An ArrowInsertParams of any other shape, checked and parsed by its message class (421 if
    malformed)."""
    request = decode_request(data, v5api.ArrowInsertParams)
    bits = request.rounding.bits if request.rounding is not None else None
    return ArrowInsertRequest(
        request.uuid, request.sync, int(request.merge_policy), bits, request.arrow_bytes
    )
