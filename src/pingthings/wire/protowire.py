"""Low-level protobuf wire-format reading and writing (varints, keys, field skipping).

Only what the point codecs need: they read message headers field by field in Python and hand
the point records to numpy. Every read is bounds-checked and reports problems as
:class:`WireFormatError`, never as ``IndexError``.
"""

from __future__ import annotations

from typing import TypeAlias

#: Anything the codecs accept as input: bytes, bytearray or a (contiguous) memoryview.
BytesLike: TypeAlias = bytes | bytearray | memoryview

#: Wire types of the protobuf encoding.
VARINT = 0
FIXED64 = 1
LEN = 2
START_GROUP = 3
END_GROUP = 4
FIXED32 = 5

_U64_MASK = (1 << 64) - 1
_MAX_GROUP_DEPTH = 64


class WireFormatError(ValueError):
    """The bytes are not a valid protobuf encoding of the expected message."""


def as_byteview(buf: BytesLike) -> memoryview | bytes:
    """Return ``buf`` in a form that indexes to ``int`` quickly.

    ``bytes`` is returned unchanged; anything else is viewed as an unsigned-byte memoryview.
    """
    if isinstance(buf, bytes):
        return buf
    try:
        view = memoryview(buf)
        return view if view.format == "B" and view.ndim == 1 else view.cast("B")
    except TypeError as exc:
        raise TypeError(f"expected a bytes-like object, got {type(buf).__name__}") from exc


def read_varint(data: memoryview | bytes, pos: int, end: int) -> tuple[int, int]:
    """Read one varint at ``pos``; return ``(value, position after it)``.

    Raises
    ------
    WireFormatError
        If the varint runs past ``end`` or is longer than ten bytes.
    """
    result = 0
    shift = 0
    while True:
        if pos >= end:
            raise WireFormatError(f"truncated varint at byte {pos}")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result & _U64_MASK, pos
        shift += 7
        if shift >= 70:
            raise WireFormatError(f"varint longer than 10 bytes ending at byte {pos}")


def read_key(data: memoryview | bytes, pos: int, end: int) -> tuple[int, int, int]:
    """Read a field key; return ``(field number, wire type, position after it)``."""
    start = pos
    key, pos = read_varint(data, pos, end)
    field, wire_type = key >> 3, key & 7
    if field == 0 or key > 0xFFFFFFFF:
        raise WireFormatError(f"invalid field number {field} in key at byte {start}")
    if wire_type > FIXED32:
        raise WireFormatError(f"invalid wire type {wire_type} for field {field} at byte {start}")
    return field, wire_type, pos


def read_length(data: memoryview | bytes, pos: int, end: int, field: int) -> tuple[int, int]:
    """Read a length prefix; return ``(payload start, payload end)`` checked against ``end``."""
    length, pos = read_varint(data, pos, end)
    if length > end - pos:
        raise WireFormatError(f"field {field}: length {length} at byte {pos} runs past the end ({end})")
    return pos, pos + length


def skip_field(data: memoryview | bytes, pos: int, end: int, field: int, wire_type: int) -> int:
    """Skip the value of an unknown field whose key has just been read; return the next position."""
    if wire_type == VARINT:
        return read_varint(data, pos, end)[1]
    if wire_type == FIXED64:
        if pos + 8 > end:
            raise WireFormatError(f"field {field}: truncated 64-bit value at byte {pos}")
        return pos + 8
    if wire_type == FIXED32:
        if pos + 4 > end:
            raise WireFormatError(f"field {field}: truncated 32-bit value at byte {pos}")
        return pos + 4
    if wire_type == LEN:
        return read_length(data, pos, end, field)[1]
    if wire_type == START_GROUP:
        return _skip_group(data, pos, end, field)
    raise WireFormatError(f"unexpected end-group for field {field} at byte {pos}")


def _skip_group(data: memoryview | bytes, pos: int, end: int, field: int) -> int:
    """Skip a (deprecated) group up to and including its matching end-group key."""
    open_fields = [field]
    while open_fields:
        if len(open_fields) > _MAX_GROUP_DEPTH:
            raise WireFormatError(f"groups nested deeper than {_MAX_GROUP_DEPTH} at byte {pos}")
        inner, wire_type, pos = read_key(data, pos, end)
        if wire_type == END_GROUP:
            if inner != open_fields[-1]:
                raise WireFormatError(
                    f"end-group for field {inner} does not match the open group {open_fields[-1]}"
                )
            open_fields.pop()
        elif wire_type == START_GROUP:
            open_fields.append(inner)
        else:
            pos = skip_field(data, pos, end, inner, wire_type)
    return pos


def fixed64_at(data: memoryview | bytes, pos: int) -> int:
    """The unsigned little-endian 64-bit integer at ``pos`` (bounds already checked)."""
    return int.from_bytes(data[pos : pos + 8], "little")


def encode_varint(value: int) -> bytes:
    """Encode a non-negative integer below 2**64 as a varint."""
    if value < 0x80:
        if value < 0:
            raise ValueError(f"varint value must not be negative, got {value}")
        return bytes((value,))
    if value > _U64_MASK:
        raise ValueError(f"varint value {value} does not fit in 64 bits")
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode_key(field: int, wire_type: int) -> bytes:
    """Encode a field key."""
    return encode_varint((field << 3) | wire_type)


def encode_len_field(field: int, payload: bytes) -> bytes:
    """Encode a length-delimited field (key, length, payload)."""
    return encode_key(field, LEN) + encode_varint(len(payload)) + payload


def to_signed(value: int, bits: int) -> int:
    """Interpret the low ``bits`` bits of ``value`` as a two's-complement integer."""
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value
