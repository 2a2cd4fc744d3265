"""The data-path RPCs of one stream, as thin async functions over :mod:`._rpc`.

Point-bearing responses never go through message classes: protobuf payloads are decoded by
:mod:`pingthings.wire.points` into numpy arrays, Arrow payloads are opened as IPC streams in
place, and both come out as pyarrow Tables with the same schema. Which RPC family is used
depends on ``client.arrow_enabled`` (what the server's Info advertised).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from typing import Any
from uuid import UUID

import numpy as np
import pyarrow as pa

from pingthings._proto.pingthings.platform.v1 import (
    GetStreamRetentionParams,
    Retention,
    StreamRetentionResponse,
    VersionAtTimeParams,
    VersionAtTimeResponse,
)
from pingthings._proto.v5api import (
    AlignedWindowsParams,
    ArrowMultiValuesParams,
    ArrowRawValuesParams,
    ChangesParams,
    DeleteParams,
    DeleteResponse,
    FlushParams,
    FlushResponse,
    InsertResponse,
    KeyOptValue,
    NearestParams,
    ObliterateParams,
    ObliterateResponse,
    RawValuesParams,
    SetStreamAnnotationsParams,
    SetStreamAnnotationsResponse,
    SetStreamTagsParams,
    SetStreamTagsResponse,
    StreamDescriptor,
    StreamInfoParams,
    StreamInfoResponse,
    WindowsParams,
)
from pingthings.timeseries import _raw_blocks as raw_blocks
from pingthings.timeseries._call_policy import IDEMPOTENT_MERGE_POLICIES
from pingthings.timeseries._platform_codec import retention_to_dict
from pingthings.timeseries._platform_rpc import call_platform
from pingthings.timeseries._raw_annotations import STREAM_INFO_DESCRIPTOR, restore_in_response
from pingthings.timeseries._results import Point
from pingthings.timeseries._rpc import CallTarget, call_stream, call_unary, call_unary_payload, decode_checked
from pingthings.timeseries.constants import RAW_VALUES_SCHEMA, STAT_F64_SCHEMA
from pingthings.timeseries.exceptions import NoSuchPointError, raise_for_status
from pingthings.wire import arrow as wire_arrow
from pingthings.wire import arrow_insert
from pingthings.wire import points as wire_points
from pingthings.wire.insert_messages import read_insert_response
from pingthings.wire.protowire import (
    LEN,
    VARINT,
    as_byteview,
    encode_key,
    encode_len_field,
    encode_varint,
    read_key,
    read_length,
    read_varint,
    skip_field,
)


def use_arrow(client: CallTarget) -> bool:
    """True when the server serves the Arrow RPCs (Info minor version >= 30)."""
    return client.arrow_enabled


# ------------------------------------------------------------------------------ Arrow envelopes
def _arrow_envelope(payload: bytes | memoryview, blob_field: int) -> tuple[int, memoryview | None]:
    """Read an Arrow response's header in place: raise for its ``stat``; return the version and
    a zero-copy view of the IPC bytes (``blob_field`` is 4 for single-stream responses, 2 for
    ArrowMultiValues)."""
    data = as_byteview(payload)
    pos, end = 0, len(data)
    version = 0
    blob: memoryview | None = None
    while pos < end:
        number, wire_type, pos = read_key(data, pos, end)
        if number == 1 and wire_type == LEN:
            start, pos = read_length(data, pos, end, number)
            status = wire_points.decode_status(data[start:pos])
            raise_for_status(status.code, status.msg)
        elif number == blob_field and wire_type == LEN:
            start, pos = read_length(data, pos, end, number)
            blob = memoryview(data)[start:pos]
        elif number == 2 and blob_field != 2 and wire_type != LEN:
            version, pos = read_varint(data, pos, end)
        else:
            pos = skip_field(data, pos, end, number, wire_type)
    return version, blob


def _ipc_table(blob: memoryview | None, schema: pa.Schema) -> pa.Table:
    if blob is None or len(blob) == 0:
        return schema.empty_table()
    return wire_arrow.ipc_to_table(blob)


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Make a result's schema exactly ``schema`` (names, types and nullability)."""
    if table.schema.equals(schema):
        return table
    if set(table.column_names) == set(schema.names):
        table = table.select(schema.names)  # same columns in another order (e.g. mean before min)
    elif table.num_columns == len(schema):
        table = table.rename_columns(schema.names)
    return table.cast(schema)


def concat_raw(tables: Sequence[pa.Table]) -> pa.Table:
    """Join raw-value chunks into one Table (an empty one with the raw schema if there are none)."""
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return RAW_VALUES_SCHEMA.empty_table()
    return tables[0] if len(tables) == 1 else pa.concat_tables(tables)


def concat_stat(tables: Sequence[pa.Table]) -> pa.Table:
    """Join statistics chunks into one Table (empty with the float64 stat schema if none)."""
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return STAT_F64_SCHEMA.empty_table()
    return tables[0] if len(tables) == 1 else pa.concat_tables(tables)


# ------------------------------------------------------------------------------ metadata / versions
async def stream_descriptor(client: CallTarget, uuid: UUID) -> StreamDescriptor:
    """StreamInfo with the descriptor (and without the version)."""
    # Read as raw bytes: annotation values a v4 server stored as bare text must be read from them.
    raw = await _unary_raw(client, "StreamInfo", StreamInfoParams(uuid=uuid.bytes, omit_version=True))
    resp = decode_checked(raw, StreamInfoResponse)
    if resp.descriptor is None:
        return StreamDescriptor(uuid=uuid.bytes)
    restore_in_response(resp, raw, STREAM_INFO_DESCRIPTOR)
    return resp.descriptor


async def latest_version(client: CallTarget, uuid: UUID) -> int:
    """StreamInfo's data version (the descriptor omitted)."""
    resp = await call_unary(
        client, "StreamInfo", StreamInfoParams(uuid=uuid.bytes, omit_descriptor=True), StreamInfoResponse
    )
    return int(resp.version_major)


async def version_at_time(client: CallTarget, uuid: UUID, time: int) -> int:
    """Platform VersionAtTime: the data version current at wall-clock ``time``."""
    resp = await call_platform(
        client, "VersionAtTime", VersionAtTimeParams(uuid=uuid.bytes, time=time), VersionAtTimeResponse
    )
    return int(resp.version)


def _retention_dict(r: Retention | None) -> dict[str, Any] | None:
    if r is None:
        return None
    return {**retention_to_dict(r), "override_per_stream": bool(r.override_per_stream)}


async def stream_retention(client: CallTarget, uuid: UUID) -> dict[str, Any]:
    """Platform GetStreamRetention as ``{"retention": ..., "effective": ...}``."""
    resp = await call_platform(
        client, "GetStreamRetention", GetStreamRetentionParams(uuid=uuid.bytes), StreamRetentionResponse
    )
    return {"retention": _retention_dict(resp.retention), "effective": _retention_dict(resp.effective)}


async def set_tags(
    client: CallTarget,
    uuid: UUID,
    expected_property_version: int,
    tags: list[KeyOptValue],
    collection: str,
    remove: list[str],
) -> None:
    """SetStreamTags (checked against ``expected_property_version``)."""
    await call_unary(
        client,
        "SetStreamTags",
        SetStreamTagsParams(
            uuid=uuid.bytes,
            expected_property_version=expected_property_version,
            tags=tags,
            collection=collection,
            remove=remove,
        ),
        SetStreamTagsResponse,
    )


async def set_annotations(
    client: CallTarget,
    uuid: UUID,
    expected_property_version: int,
    changes: list[KeyOptValue],
    removals: list[str],
) -> None:
    """SetStreamAnnotations (checked against ``expected_property_version``)."""
    await call_unary(
        client,
        "SetStreamAnnotations",
        SetStreamAnnotationsParams(
            uuid=uuid.bytes,
            expected_property_version=expected_property_version,
            changes=changes,
            removals=removals,
        ),
        SetStreamAnnotationsResponse,
    )


# ------------------------------------------------------------------------------ reads
async def raw_values_chunks(
    client: CallTarget, uuid: UUID, start: int, end: int, version: int
) -> AsyncGenerator[pa.Table, None]:
    """RawBlocks (when the server offers it), else RawValues / ArrowRawValues, one Table per
    response message."""
    if raw_blocks.offered(client):
        try:
            async with aclosing(raw_blocks.raw_block_tables(client, uuid, start, end, version)) as tables:
                async for table in tables:
                    yield table
            return
        except raw_blocks.Unsupported:
            pass  # a stock server: the standard RPCs below, from now on
    if use_arrow(client):
        req: Any = ArrowRawValuesParams(uuid=uuid.bytes, start=start, end=end, version_major=version)
        async with call_stream(client, "ArrowRawValues", req) as messages:
            async for payload in messages:
                _, blob = _arrow_envelope(payload, 4)
                yield _conform(_ipc_table(blob, RAW_VALUES_SCHEMA), RAW_VALUES_SCHEMA)
        return
    req = RawValuesParams(uuid=uuid.bytes, start=start, end=end, version_major=version)
    async with call_stream(client, "RawValues", req) as messages:
        async for payload in messages:
            r = wire_points.decode_raw_values(payload)
            if r.stat is not None:
                raise_for_status(r.stat.code, r.stat.msg)
            yield wire_arrow.raw_table(r.times, r.values)


async def raw_values_table(client: CallTarget, uuid: UUID, start: int, end: int, version: int) -> pa.Table:
    """The whole RawValues result as one Table.

    On the protobuf path the decoded arrays (views into the received messages) are joined with
    one ``np.concatenate`` per column and wrapped without a further copy; on the Arrow path the
    received record batches become the chunks of the Table as they are. RawBlocks, when the
    server offers it, comes first (see :mod:`._raw_blocks`).
    """
    if raw_blocks.offered(client):
        try:
            async with aclosing(raw_blocks.raw_block_tables(client, uuid, start, end, version)) as tables:
                return concat_raw([t async for t in tables])
        except raw_blocks.Unsupported:
            pass
    if use_arrow(client):
        return concat_raw([t async for t in raw_values_chunks(client, uuid, start, end, version)])
    times: list[np.ndarray] = []
    values: list[np.ndarray] = []
    req = RawValuesParams(uuid=uuid.bytes, start=start, end=end, version_major=version)
    async with call_stream(client, "RawValues", req) as messages:
        async for payload in messages:
            r = wire_points.decode_raw_values(payload)
            if r.stat is not None:
                raise_for_status(r.stat.code, r.stat.msg)
            if len(r.times):
                times.append(r.times)
                values.append(r.values)
    if not times:
        return RAW_VALUES_SCHEMA.empty_table()
    return wire_arrow.raw_table(np.concatenate(times), np.concatenate(values))


async def _stat_chunks(
    client: CallTarget, method: str, arrow_method: str, req: Any
) -> AsyncGenerator[pa.Table, None]:
    if use_arrow(client):
        async with call_stream(client, arrow_method, req) as messages:
            async for payload in messages:
                _, blob = _arrow_envelope(payload, 4)
                yield _conform(_ipc_table(blob, STAT_F64_SCHEMA), STAT_F64_SCHEMA)
        return
    async with call_stream(client, method, req) as messages:
        async for payload in messages:
            w = wire_points.decode_windows(payload)
            if w.stat is not None:
                raise_for_status(w.stat.code, w.stat.msg)
            yield wire_arrow.stat_table(w)  # type: ignore[arg-type]  # (read-only dataclass fields)


def aligned_windows_chunks(
    client: CallTarget, uuid: UUID, start: int, end: int, point_width: int, version: int
) -> AsyncGenerator[pa.Table, None]:
    """AlignedWindows / ArrowAlignedWindows, one float64 stat Table per response message."""
    req = AlignedWindowsParams(
        uuid=uuid.bytes, start=start, end=end, version_major=version, point_width=point_width
    )
    return _stat_chunks(client, "AlignedWindows", "ArrowAlignedWindows", req)


def windows_chunks(
    client: CallTarget, uuid: UUID, start: int, end: int, width: int, version: int
) -> AsyncGenerator[pa.Table, None]:
    """Windows / ArrowWindows, one float64 stat Table per response message."""
    req = WindowsParams(uuid=uuid.bytes, start=start, end=end, version_major=version, width=width, depth=0)
    return _stat_chunks(client, "Windows", "ArrowWindows", req)


async def nearest(client: CallTarget, uuid: UUID, time: int, version: int, backward: bool) -> Point:
    """Nearest; raises NoSuchPointError when there is no point in that direction."""
    req = NearestParams(uuid=uuid.bytes, time=time, version_major=version, backward=backward)
    payload = await _unary_raw(client, "Nearest", req)
    r = wire_points.decode_nearest(payload)
    if r.stat is not None:
        raise_for_status(r.stat.code, r.stat.msg)
    if r.time is None:
        raise NoSuchPointError("no point found", 401)
    return Point(int(r.time), float(r.value if r.value is not None else 0.0))


async def changes_chunks(
    client: CallTarget, uuid: UUID, from_version: int, to_version: int, resolution: int
) -> AsyncGenerator[tuple[np.ndarray, np.ndarray], None]:
    """Changes, one ``(starts, ends)`` pair of arrays per response message."""
    req = ChangesParams(uuid=uuid.bytes, from_major=from_version, to_major=to_version, resolution=resolution)
    async with call_stream(client, "Changes", req) as messages:
        async for payload in messages:
            c = wire_points.decode_changes(payload)
            if c.stat is not None:
                raise_for_status(c.stat.code, c.stat.msg)
            yield c.starts, c.ends


async def multi_values(
    client: CallTarget,
    uuids: Sequence[UUID],
    versions: Sequence[int],
    start: int,
    end: int,
    snap_period_ns: int,
) -> pa.Table:
    """ArrowMultiValues: the streams' raw values outer-joined on time (NaN where missing)."""
    req = ArrowMultiValuesParams(
        uuid=[u.bytes for u in uuids],
        version_major=list(versions),
        start=start,
        end=end,
        snap_period_ns=snap_period_ns,
    )
    tables = []
    async with call_stream(client, "ArrowMultiValues", req) as messages:
        async for payload in messages:
            _, blob = _arrow_envelope(payload, 2)
            if blob is not None and len(blob):
                tables.append(wire_arrow.ipc_to_table(blob))
    tables = [t for t in tables if t.num_rows] or tables[:1]
    if not tables:
        return pa.schema([pa.field("time", pa.timestamp("ns", tz="UTC"), nullable=False)]).empty_table()
    return tables[0] if len(tables) == 1 else pa.concat_tables(tables)


# ------------------------------------------------------------------------------ writes
async def _unary_raw(client: CallTarget, method: str, request: Any) -> bytes:
    """A unary call whose response is decoded by the caller (point-bearing responses)."""
    async with call_stream(client, method, request) as messages:
        async for payload in messages:
            return bytes(payload)
    return b""


def _arrow_insert_request(uuid: UUID, merge_policy: int, ipc: bytes) -> bytes:
    """ArrowInsertParams{uuid=1, merge_policy=3, arrow_bytes=5} encoded by hand: the IPC bytes are
    copied once into the request instead of going through a message class."""
    head = encode_len_field(1, uuid.bytes)
    if merge_policy:
        head += encode_key(3, VARINT) + encode_varint(merge_policy)
    return b"".join((head, encode_key(5, LEN), encode_varint(len(ipc)), ipc))


async def insert(
    client: CallTarget, uuid: UUID, times: np.ndarray, values: np.ndarray, merge_policy: int
) -> int:
    """Insert / ArrowInsert of one batch; returns the stream's version after it."""
    if use_arrow(client):
        method = "ArrowInsert"
        body = _arrow_insert_request(uuid, merge_policy, arrow_insert.encode(times, values))
    else:
        method = "Insert"
        body = wire_points.encode_insert(uuid.bytes, times, values, merge_policy=merge_policy)
    payload = await call_unary_payload(
        client, method, body, InsertResponse, idempotent=merge_policy in IDEMPOTENT_MERGE_POLICIES
    )
    version = read_insert_response(payload)  # a plain reply, read by hand
    if version is None:
        version = int(decode_checked(payload, InsertResponse).version_major)
    return version


async def delete(client: CallTarget, uuid: UUID, start: int, end: int) -> int:
    """Delete ``[start, end)``; returns the new version."""
    resp = await call_unary(
        client, "Delete", DeleteParams(uuid=uuid.bytes, start=start, end=end), DeleteResponse
    )
    return int(resp.version_major)


async def flush(client: CallTarget, uuid: UUID) -> int:
    """Flush; returns the stream's version."""
    resp = await call_unary(client, "Flush", FlushParams(uuid=uuid.bytes), FlushResponse)
    return int(resp.version_major)


async def obliterate(client: CallTarget, uuid: UUID) -> None:
    """Obliterate the stream."""
    await call_unary(client, "Obliterate", ObliterateParams(uuid=uuid.bytes), ObliterateResponse)
