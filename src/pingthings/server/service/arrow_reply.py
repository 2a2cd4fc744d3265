"""Encode Arrow reply messages with the IPC stream written straight into the message buffer.

ArrowRawValuesResponse, ArrowAlignedWindowsResponse and ArrowWindowsResponse share one layout:
``stat = 1`` (absent when OK), ``versionMajor = 2``, ``versionMinor = 3`` (never set, as before)
and ``arrowBytes = 4``. Building them through the message classes copies the IPC bytes twice
(``to_pybytes`` then protobuf serialisation); here the IPC stream's size is measured first, the
protobuf header is written, and the stream is serialised once, behind it, into one buffer that
the codec hands to grpclib without a further copy.
"""

from __future__ import annotations

import pyarrow as pa

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
    head = b""
    if version:
        head = encode_key(VERSION_MAJOR_FIELD, _VARINT) + encode_varint(version)
    head += encode_key(blob_field, _LEN) + encode_varint(size)
    buffer = pa.allocate_buffer(len(head) + size)
    sink = pa.FixedSizeBufferWriter(buffer)
    sink.write(head)
    _write_ipc(sink, table)
    if sink.tell() != len(head) + size:  # pragma: no cover - Arrow changed its IPC writer
        raise RuntimeError(f"Arrow IPC stream was {sink.tell() - len(head)} bytes, measured {size}")
    return buffer
