"""The v5 ``InfoResponse`` read straight from its bytes.

``Info`` is the call dashboards and health checks make most, and the generated message class spends
more time building its nested objects than the whole HTTP/2 exchange costs. This reader walks the
fields once with :mod:`.protowire` and keeps only what the client reports: the status, the two
version numbers, the build string and the proxy endpoints (``mash`` is skipped; the client does not
use it).

Protobuf's rules hold: fields may come in any order and more than once; for a scalar the last value
wins; sub-messages sent in several pieces merge, so the status takes the last code and message seen
and every piece of ``proxy`` adds its endpoints. A known field with the wrong wire type, a truncated
field or text that is not UTF-8 raises :class:`~.protowire.WireFormatError`.
"""

from __future__ import annotations

from typing import NamedTuple

from pingthings.wire.protowire import (
    FIXED32,
    LEN,
    VARINT,
    BytesLike,
    WireFormatError,
    as_byteview,
    read_key,
    read_length,
    read_varint,
    skip_field,
)

__all__ = ["InfoReply", "decode_info"]

_U32 = 0xFFFFFFFF


class InfoReply(NamedTuple):
    """What an ``InfoResponse`` says, as plain values."""

    stat_code: int
    """The status code (0: success)."""
    stat_msg: str
    """The status text ('' when none was sent)."""
    major_version: int
    minor_version: int
    build: str
    proxy_endpoints: list[str]
    """Every endpoint of every ``proxy`` piece, in the order received."""


def _text(data: memoryview | bytes, start: int, end: int, what: str) -> str:
    try:
        return str(data[start:end], "utf-8")  # bytes or a memoryview, decoded without a copy
    except UnicodeDecodeError as exc:
        raise WireFormatError(f"InfoResponse {what} is not valid UTF-8: {exc}") from None


def _expect(number: int, wire_type: int, wanted: int) -> None:
    if wire_type != wanted:
        raise WireFormatError(f"InfoResponse field {number} has wire type {wire_type}, expected {wanted}")


def decode_info(buf: BytesLike) -> InfoReply:
    """Parse an ``InfoResponse`` message.

    Parameters
    ----------
    buf
        The message bytes (a gRPC reply payload, without its 5-byte prefix).

    Returns
    -------
    InfoReply
        The status, versions, build and proxy endpoints; absent fields are zero or empty.

    Raises
    ------
    WireFormatError
        If the bytes are not a valid encoding of the message.
    """
    data = as_byteview(buf)
    end = len(data)
    pos = 0
    code, msg, major, minor, build = 0, "", 0, 0, ""
    endpoints: list[str] = []
    while pos < end:
        # Keys, small numbers and short lengths are one byte each: read here, without a call (the
        # helpers of .protowire handle every longer form, and every error).
        key = data[pos]
        if 8 <= key < 0x80 and key & 7 <= FIXED32:
            number, wire_type, pos = key >> 3, key & 7, pos + 1
        else:
            number, wire_type, pos = read_key(data, pos, end)
        if number == 3 or number == 4:
            _expect(number, wire_type, VARINT)
            value, pos = _small(data, pos, end)
            if number == 3:
                major = value & _U32
            else:
                minor = value & _U32
        elif number == 5:
            _expect(number, wire_type, LEN)
            start, pos = _span(data, pos, end, number)
            build = _text(data, start, pos, "build")
        elif number == 1:
            _expect(number, wire_type, LEN)
            start, pos = _span(data, pos, end, number)
            code, msg = _status(data, start, pos, code, msg)
        elif number == 6:
            _expect(number, wire_type, LEN)
            start, pos = _span(data, pos, end, number)
            _proxy(data, start, pos, endpoints)
        else:
            pos = skip_field(data, pos, end, number, wire_type)
    return InfoReply(code, msg, major, minor, build, endpoints)


def _small(data: memoryview | bytes, pos: int, end: int) -> tuple[int, int]:
    """A varint at ``pos`` (one byte read directly, longer ones by :func:`read_varint`)."""
    if pos < end and data[pos] < 0x80:
        return data[pos], pos + 1
    return read_varint(data, pos, end)


def _span(data: memoryview | bytes, pos: int, end: int, field: int) -> tuple[int, int]:
    """``(start, end)`` of a length-delimited field whose length is at ``pos`` (see :func:`_small`)."""
    if pos < end and data[pos] < 0x80:
        start = pos + 1
        stop = start + data[pos]
        if stop <= end:
            return start, stop
    return read_length(data, pos, end, field)


def _status(data: memoryview | bytes, pos: int, end: int, code: int, msg: str) -> tuple[int, str]:
    """Merge one ``Status`` piece into ``(code, msg)``."""
    while pos < end:
        number, wire_type, pos = read_key(data, pos, end)
        if number == 1:
            _expect(number, wire_type, VARINT)
            value, pos = read_varint(data, pos, end)
            code = value & _U32
        elif number == 2:
            _expect(number, wire_type, LEN)
            start, pos = read_length(data, pos, end, number)
            msg = _text(data, start, pos, "status message")
        else:
            pos = skip_field(data, pos, end, number, wire_type)
    return code, msg


def _proxy(data: memoryview | bytes, pos: int, end: int, endpoints: list[str]) -> None:
    """Append the endpoints of one ``ProxyInfo`` piece."""
    while pos < end:
        if data[pos] == 0x0A:  # field 1, length-delimited: the only field, in one byte
            number, wire_type, pos = 1, LEN, pos + 1
        else:
            number, wire_type, pos = read_key(data, pos, end)
        if number == 1:
            _expect(number, wire_type, LEN)
            start, pos = _span(data, pos, end, number)
            endpoints.append(_text(data, start, pos, "proxy endpoint"))
        else:
            pos = skip_field(data, pos, end, number, wire_type)
