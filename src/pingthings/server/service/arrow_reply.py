"""Encode Arrow reply messages with the IPC stream written straight into the message buffer.

ArrowRawValuesResponse, ArrowAlignedWindowsResponse and ArrowWindowsResponse share one layout:
``stat = 1`` (absent when OK), ``versionMajor = 2``, ``versionMinor = 3`` (never set, as before)
and ``arrowBytes = 4``. Building them through the message classes copies the IPC bytes twice
(``to_pybytes`` then protobuf serialisation); here the IPC stream's size is measured first, the
protobuf header is written, and the stream is serialised once, behind it, into one buffer that
the codec hands to grpclib without a further copy.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pyarrow as pa

from pingthings.wire.arrow import RAW_SCHEMA, raw_table
from pingthings.wire.protowire import encode_key, encode_varint

#: Field numbers of the shared reply layout.
VERSION_MAJOR_FIELD = 2
ARROW_BYTES_FIELD = 4
#: ``arrowBytes`` of ArrowMultiValuesResponse (``stat = 1``, ``arrowBytes = 2``).
MULTI_ARROW_BYTES_FIELD = 2

_LEN = 2  # wire type of length-delimited fields
_VARINT = 0


def _write_ipc(sink: pa.NativeFile, table: pa.Table) -> None:
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)


def _reply_head(version: int, blob_field: int, blob_size: int) -> bytes:
    """The protobuf bytes before ``arrowBytes``' content: ``versionMajor`` (omitted when 0, as proto3
    does) and the key and length of field ``blob_field``."""
    head = encode_key(VERSION_MAJOR_FIELD, _VARINT) + encode_varint(version) if version else b""
    return head + encode_key(blob_field, _LEN) + encode_varint(blob_size)


def ipc_size(table: pa.Table) -> int:
    """Bytes of ``table`` as one complete IPC stream (computed without copying the columns)."""
    mock = pa.MockOutputStream()
    _write_ipc(mock, table)
    return int(mock.size())


def arrow_reply(version: int, table: pa.Table, blob_field: int = ARROW_BYTES_FIELD) -> pa.Buffer:
    """One reply message holding ``versionMajor = version`` and ``table`` as ``arrowBytes``.

    A zero version is omitted, as proto3 does; an empty table still carries its schema.
    ``blob_field`` is the field number of ``arrowBytes``: 4 in the shared layout, 2 in
    ArrowMultiValuesResponse (which has no version; pass 0).
    """
    size = ipc_size(table)
    head = _reply_head(version, blob_field, size)
    buffer = pa.allocate_buffer(len(head) + size)
    sink = pa.FixedSizeBufferWriter(buffer)
    sink.write(head)
    _write_ipc(sink, table)
    if sink.tell() != len(head) + size:  # pragma: no cover - Arrow changed its IPC writer
        raise RuntimeError(f"Arrow IPC stream was {sink.tell() - len(head)} bytes, measured {size}")
    return buffer


class Segments:
    """One reply message held as consecutive buffers, to be sent without joining them.

    A large Arrow reply is mostly two column buffers that already exist in memory; writing them into
    one IPC buffer would copy every point. The direct sender (:mod:`.direct_send`) writes the parts
    one after another; anything else calls :meth:`join`.
    """

    __slots__ = ("nbytes", "parts", "sizes")

    def __init__(self, parts: list[Any], sizes: list[int] | None = None) -> None:
        self.parts = parts
        self.sizes = [memoryview(p).nbytes for p in parts] if sizes is None else sizes
        self.nbytes = sum(self.sizes)

    def __len__(self) -> int:
        return self.nbytes

    def join(self) -> bytes:
        """The message as one ``bytes`` object."""
        return b"".join(memoryview(p).cast("B") for p in self.parts)


#: The end-of-stream marker that closes an IPC stream (continuation token, zero length).
IPC_EOS = b"\xff\xff\xff\xff\x00\x00\x00\x00"
#: Tables with fewer rows are encoded into one buffer (the copy costs less than the bookkeeping).
SEGMENTS_MIN_ROWS = 4096


def _pad8(n: int) -> int:
    return (n + 7) & ~7


def _column_width(field: pa.Field) -> int | None:
    """Bytes per value of a fixed-width column type without children, else None."""
    try:
        bits = field.type.bit_width
    except ValueError:
        return None
    return bits // 8 if bits % 8 == 0 and field.type.num_fields == 0 else None


@functools.lru_cache(maxsize=64)
def _ipc_head(schema: pa.Schema, rows: int) -> bytes | None:
    """The bytes of an IPC stream of ``rows`` rows of ``schema`` that precede the column data.

    Found by writing a table of zeros with pyarrow's own writer and checking that the stream is
    exactly that head, each column's values padded to 8 bytes, and the end-of-stream marker; None if
    the writer lays the stream out in any other way (then the caller encodes the table whole).
    """
    found = [_column_width(f) for f in schema]
    widths = [w for w in found if w is not None]
    if len(widths) != len(found):
        return None
    columns = [
        pa.Array.from_buffers(f.type, rows, [None, pa.py_buffer(bytes(rows * w))])
        for f, w in zip(schema, widths, strict=True)
    ]
    table = pa.Table.from_arrays(columns, schema=schema)
    sink = pa.BufferOutputStream()
    _write_ipc(sink, table)
    stream = sink.getvalue()
    body = sum(_pad8(rows * w) for w in widths)
    head_size = stream.size - body - len(IPC_EOS)
    if head_size <= 0 or stream.to_pybytes()[head_size:] != bytes(body) + IPC_EOS:
        return None
    return stream.to_pybytes()[:head_size]


def _column_views(table: pa.Table) -> list[memoryview] | None:
    """Each column's values as one view of exactly ``rows × width`` bytes, or None if any column
    is chunked, sliced, holds nulls, or is not fixed-width."""
    rows = table.num_rows
    views: list[memoryview] = []
    for column, field in zip(table.columns, table.schema, strict=True):
        width = _column_width(field)
        if width is None or column.num_chunks != 1 or column.null_count:
            return None
        array = column.chunk(0)
        buffers = array.buffers()
        # (A validity bitmap is allowed: with no nulls the IPC writer does not send it.)
        if array.offset or len(buffers) != 2 or buffers[1] is None:
            return None
        data = memoryview(buffers[1]).cast("B")
        if len(data) < rows * width:
            return None
        views.append(data[: rows * width])
    return views


def arrow_reply_segments(
    version: int, table: pa.Table, blob_field: int = ARROW_BYTES_FIELD
) -> Segments | pa.Buffer:
    """Like :func:`arrow_reply`, but a large table's columns are not copied.

    The result is a :class:`Segments` whose parts are the protobuf header with the IPC head, each
    column's memory (padded to 8 bytes), and the end-of-stream marker: the same bytes
    :func:`arrow_reply` produces. Small tables, and tables whose layout does not allow it, get
    :func:`arrow_reply`'s single buffer.
    """
    if table.num_rows < SEGMENTS_MIN_ROWS:
        return arrow_reply(version, table, blob_field)
    views = _column_views(table)
    ipc_head = _ipc_head(table.schema, table.num_rows) if views is not None else None
    if views is None or ipc_head is None:
        return arrow_reply(version, table, blob_field)
    parts: list[bytes | memoryview] = [b""]
    size = len(ipc_head)
    for view in views:
        parts.append(view)
        size += len(view)
        if len(view) % 8:
            parts.append(bytes(8 - len(view) % 8))
            size += 8 - len(view) % 8
    parts.append(IPC_EOS)
    size += len(IPC_EOS)
    parts[0] = _reply_head(version, blob_field, size) + ipc_head
    return Segments(parts)


def raw_pieces_reply(
    version: int, times: list[np.ndarray], values: list[np.ndarray], rows: int
) -> Segments | pa.Buffer:
    """An ArrowRawValues reply (schema :data:`~pingthings.wire.arrow.RAW_SCHEMA`) made of point views.

    ``times`` (int64) and ``values`` (float64) are the chunk's points as consecutive pieces, ``rows``
    in all. The reply's parts are the header, every time piece, every value piece and the
    end-of-stream marker: the bytes :func:`arrow_reply` would produce for the joined table, with no
    point copied. Below :data:`SEGMENTS_MIN_ROWS` rows the pieces are joined into one buffer.
    """
    ipc_head = _ipc_head(RAW_SCHEMA, rows) if rows >= SEGMENTS_MIN_ROWS else None
    if ipc_head is None:
        table = raw_table(np.concatenate(times), np.concatenate(values)) if rows else RAW_SCHEMA.empty_table()
        return arrow_reply(version, table)
    size = len(ipc_head) + 16 * rows + len(IPC_EOS)
    head = _reply_head(version, ARROW_BYTES_FIELD, size) + ipc_head
    sizes = [len(head), *(t.nbytes for t in times), *(v.nbytes for v in values), len(IPC_EOS)]
    return Segments([head, *times, *values, IPC_EOS], sizes)
