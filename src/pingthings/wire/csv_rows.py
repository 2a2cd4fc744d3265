"""GenerateCSV reply messages, written straight to protobuf bytes.

A CSV export sends one message per row, often hundreds of thousands of them, and a generic message
encoder spends about 50 µs on each; the few bytes of a row are written here in a few µs instead.
The message is ``GenerateCSVResponse`` (btrdb.proto): ``isHeader`` (field 2, bool) and ``row``
(field 3, repeated string); ``stat`` (field 1) is left out, as a successful reply leaves it unset.
"""

from __future__ import annotations

from pingthings.wire.protowire import encode_varint

_HEADER_FLAG = b"\x10\x01"  # field 2 (isHeader), varint 1
_ROW_KEY = b"\x1a"  # field 3 (row), length-delimited


def encode_csv_row(cells: list[str], is_header: bool = False) -> bytes:
    """The serialised ``GenerateCSVResponse`` of one CSV row.

    Parameters
    ----------
    cells
        The row's cells, in column order; empty strings are kept (a cell with no value).
    is_header
        True for the first row, the column labels.

    Returns
    -------
    bytes
        The message, as any protobuf decoder of ``GenerateCSVResponse`` reads it.
    """
    out = [_HEADER_FLAG] if is_header else []
    for cell in cells:
        data = cell.encode()
        size = len(data)
        out.append(_ROW_KEY + (bytes((size,)) if size < 0x80 else encode_varint(size)) + data)
    return b"".join(out)
