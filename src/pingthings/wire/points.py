"""numpy codecs for the v5 messages that carry points.

Point data never goes through the generated message classes (they build one Python object per
point). These functions turn ``bytes``/``memoryview`` into numpy arrays and back:

* RawValuesResponse: :func:`encode_raw_values` / :func:`decode_raw_values`
* AlignedWindowsResponse and WindowsResponse: :func:`encode_windows` / :func:`decode_windows`
* InsertParams: :func:`encode_insert` / :func:`decode_insert`
* NearestResponse: :func:`encode_nearest` / :func:`decode_nearest`
* ChangesResponse: :func:`encode_changes` / :func:`decode_changes`
* Status (inside all the responses): :func:`encode_status` / :func:`decode_status`

Encoders write every field of every point record, zeros included (valid proto3), so the peer can
use the fixed-stride fast path; header fields follow proto3 and are left out when zero. For
points without zero fields the output is byte-identical to google protobuf's serialization.
Decoders accept any valid protobuf encoding (fields in any order, repeated header fields, omitted
zero fields, unknown fields) and raise :class:`WireFormatError` for anything else. They are
stricter than google protobuf in one way: a known field sent with the wrong wire type is an error
(protobuf would keep it as an unknown field).

Decoded arrays may be read-only views into the input buffer; pass ``copy=True`` if the buffer
will be reused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Protocol

import numpy as np
from numpy.typing import ArrayLike

from pingthings.wire.protowire import (
    FIXED64,
    LEN,
    VARINT,
    BytesLike,
    WireFormatError,
    as_byteview,
    encode_key,
    encode_len_field,
    encode_varint,
    read_key,
    read_length,
    read_varint,
    skip_field,
    to_signed,
)
from pingthings.wire.records import RecordLayout, parse_record, scan_message

__all__ = [
    "ChangesResult",
    "InsertRequest",
    "NearestResult",
    "RawValuesResult",
    "StatArrays",
    "WindowsResult",
    "WireFormatError",
    "WireStatus",
    "decode_changes",
    "decode_insert",
    "decode_nearest",
    "decode_raw_values",
    "decode_status",
    "decode_windows",
    "encode_changes",
    "encode_insert",
    "encode_nearest",
    "encode_raw_values",
    "encode_status",
    "encode_windows",
]

_U64_MAX = (1 << 64) - 1
_U32_MAX = (1 << 32) - 1

RAW_POINT = RecordLayout(("time", "value"), ("<i8", "<f8"))
STAT_POINT = RecordLayout(
    ("time", "min", "mean", "max", "count", "stddev"), ("<i8", "<f8", "<f8", "<f8", "<u8", "<f8")
)
CHANGED_RANGE = RecordLayout(("start", "end"), ("<i8", "<i8"))

# Field numbers shared by every response: stat=1, versionMajor=2, versionMinor=3, payload=4.
_RESPONSE_HEADER = {1: LEN, 2: VARINT, 3: VARINT}
_RESPONSE_RECORDS = 4
# InsertParams: uuid=1, sync=2, values=3, merge_policy=4, rounding=5 (RoundSpec{bits=2}).
_INSERT_HEADER = {1: LEN, 2: VARINT, 4: VARINT, 5: LEN}
_INSERT_RECORDS = 3


class WireStatus(NamedTuple):
    """A decoded ``Status``: the v5 status code and its message."""

    code: int
    msg: str


class StatArrays(Protocol):
    """Anything with the six equal-length StatPoint arrays (e.g. the engine's ``StatWindows``)."""

    @property
    def time(self) -> np.ndarray: ...
    @property
    def min(self) -> np.ndarray: ...
    @property
    def mean(self) -> np.ndarray: ...
    @property
    def max(self) -> np.ndarray: ...
    @property
    def count(self) -> np.ndarray: ...
    @property
    def stddev(self) -> np.ndarray: ...


@dataclass(frozen=True)
class RawValuesResult:
    """A decoded RawValuesResponse."""

    times: np.ndarray
    values: np.ndarray
    version_major: int
    version_minor: int
    stat: WireStatus | None


@dataclass(frozen=True)
class WindowsResult:
    """A decoded AlignedWindowsResponse or WindowsResponse (satisfies :class:`StatArrays`)."""

    time: np.ndarray
    min: np.ndarray
    mean: np.ndarray
    max: np.ndarray
    count: np.ndarray
    stddev: np.ndarray
    version_major: int
    version_minor: int
    stat: WireStatus | None


@dataclass(frozen=True)
class InsertRequest:
    """A decoded InsertParams. ``rounding_bits`` is None unless ``rounding.bits`` was set."""

    uuid: bytes
    times: np.ndarray
    values: np.ndarray
    sync: bool
    merge_policy: int
    rounding_bits: int | None


@dataclass(frozen=True)
class NearestResult:
    """A decoded NearestResponse; ``time`` and ``value`` are None when no point was sent."""

    time: int | None
    value: float | None
    version_major: int
    version_minor: int
    stat: WireStatus | None


@dataclass(frozen=True)
class ChangesResult:
    """A decoded ChangesResponse: the changed ranges as ``[starts[i], ends[i])``."""

    starts: np.ndarray
    ends: np.ndarray
    version_major: int
    version_minor: int
    stat: WireStatus | None


# --------------------------------------------------------------------------------------------
# Status


def encode_status(code: int, msg: str = "") -> bytes:
    """Serialize a ``Status{code, msg}`` message body (without its enclosing key and length)."""
    code = int(code)
    if not 0 <= code <= _U32_MAX:
        raise ValueError(f"status code must fit in uint32, got {code}")
    out = b""
    if code:
        out += b"\x08" + encode_varint(code)
    if msg:
        out += encode_len_field(2, msg.encode("utf-8"))
    return out


def decode_status(buf: BytesLike) -> WireStatus:
    """Parse a ``Status`` message body; unknown fields (such as ``mash``) are skipped."""
    data = as_byteview(buf)
    return _parse_status(data, [(0, len(data))])


def _parse_status(data: memoryview | bytes, pieces: list[tuple[int, int]]) -> WireStatus:
    """Parse a Status sent in one or more pieces (protobuf merges repeated sub-messages)."""
    code = 0
    msg = ""
    for pos, end in pieces:
        while pos < end:
            number, wire_type, pos = read_key(data, pos, end)
            if number == 1 and wire_type == VARINT:
                value, pos = read_varint(data, pos, end)
                code = value & _U32_MAX
            elif number == 2 and wire_type == LEN:
                start, pos = read_length(data, pos, end, number)
                try:
                    msg = bytes(data[start:pos]).decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise WireFormatError(f"status message is not valid UTF-8: {exc}") from None
            elif number in (1, 2):
                raise WireFormatError(f"status field {number} has wire type {wire_type}")
            else:
                pos = skip_field(data, pos, end, number, wire_type)
    return WireStatus(code, msg)


def _encode_header(
    stat: tuple[int, str] | None, version_major: int, version_minor: int, stat_field: int = 1
) -> bytes:
    """Serialize ``stat`` (field 1) and the two uint64 version fields (2 and 3) of a response."""
    out = b""
    if stat is not None:
        out += encode_len_field(stat_field, encode_status(stat[0], stat[1]))
    for number, version in ((2, version_major), (3, version_minor)):
        version = int(version)
        if not 0 <= version <= _U64_MAX:
            raise ValueError(f"version must fit in uint64, got {version}")
        if version:
            out += encode_key(number, VARINT) + encode_varint(version)
    return out


def _header_values(
    data: memoryview | bytes, scalars: dict[int, int], blobs: dict[int, list[tuple[int, int]]]
) -> tuple[int, int, WireStatus | None]:
    """(version_major, version_minor, stat) from a scanned response header."""
    pieces = blobs.get(1)
    stat = _parse_status(data, pieces) if pieces else None
    return scalars.get(2, 0), scalars.get(3, 0), stat


# --------------------------------------------------------------------------------------------
# Array validation


def _time_array(times: ArrayLike, what: str = "times") -> np.ndarray:
    array = np.asarray(times)
    if array.ndim != 1:
        raise ValueError(f"{what} must be one-dimensional, got shape {array.shape}")
    if array.size == 0:
        return np.empty(0, dtype=np.int64)
    if array.dtype.kind == "M":
        array = array.astype("datetime64[ns]").view(np.int64)
    if array.dtype.kind not in "iu":
        raise TypeError(f"{what} must be integer nanoseconds, got dtype {array.dtype}")
    if array.dtype.kind == "u" and int(array.max()) > np.iinfo(np.int64).max:
        raise ValueError(f"{what} do not fit in int64")
    return array.astype(np.int64, copy=False)


def _float_array(values: ArrayLike, n: int, what: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1 or len(array) != n:
        raise ValueError(f"{what} must be one-dimensional with {n} elements, got shape {array.shape}")
    if array.size and array.dtype.kind not in "iuf":
        raise TypeError(f"{what} must be numeric, got dtype {array.dtype}")
    return array.astype(np.float64, copy=False)


def _count_array(counts: ArrayLike, n: int) -> np.ndarray:
    array = np.asarray(counts)
    if array.ndim != 1 or len(array) != n:
        raise ValueError(f"count must be one-dimensional with {n} elements, got shape {array.shape}")
    if array.size and array.dtype.kind not in "iu":
        raise TypeError(f"count must be integers, got dtype {array.dtype}")
    if array.dtype.kind == "i" and array.size and int(array.min()) < 0:
        raise ValueError("count must not be negative")
    return array.astype(np.uint64, copy=False)


# --------------------------------------------------------------------------------------------
# RawValuesResponse


def encode_raw_values(
    times: ArrayLike,
    values: ArrayLike,
    version_major: int = 0,
    version_minor: int = 0,
    stat: tuple[int, str] | None = None,
) -> bytes:
    """Serialize a RawValuesResponse carrying the given points.

    Parameters
    ----------
    times, values
        Equal-length arrays: int64 ns timestamps and float64 values.
    version_major, version_minor
        The data version the points were read at.
    stat
        ``(code, msg)`` for an error response, or None for none.
    """
    t = _time_array(times)
    v = _float_array(values, len(t), "values")
    return RAW_POINT.encode(0x22, [t, v], prefix=_encode_header(stat, version_major, version_minor))


def decode_raw_values(buf: BytesLike, *, copy: bool = False) -> RawValuesResult:
    """Parse a RawValuesResponse into int64 times and float64 values."""
    data = as_byteview(buf)
    scanned = scan_message(data, _RESPONSE_HEADER, _RESPONSE_RECORDS, RAW_POINT, copy=copy)
    times, values = scanned.columns
    return RawValuesResult(times, values, *_header_values(data, scanned.scalars, scanned.blobs))


# --------------------------------------------------------------------------------------------
# AlignedWindowsResponse / WindowsResponse


def encode_windows(
    windows: StatArrays,
    version_major: int = 0,
    version_minor: int = 0,
    stat: tuple[int, str] | None = None,
) -> bytes:
    """Serialize an AlignedWindowsResponse or WindowsResponse (same layout) from StatPoint arrays."""
    t = _time_array(windows.time, "time")
    n = len(t)
    columns = [
        t,
        _float_array(windows.min, n, "min"),
        _float_array(windows.mean, n, "mean"),
        _float_array(windows.max, n, "max"),
        _count_array(windows.count, n),
        _float_array(windows.stddev, n, "stddev"),
    ]
    return STAT_POINT.encode(0x22, columns, prefix=_encode_header(stat, version_major, version_minor))


def decode_windows(buf: BytesLike, *, copy: bool = False) -> WindowsResult:
    """Parse an AlignedWindowsResponse or WindowsResponse into StatPoint arrays."""
    data = as_byteview(buf)
    scanned = scan_message(data, _RESPONSE_HEADER, _RESPONSE_RECORDS, STAT_POINT, copy=copy)
    time, min_, mean, max_, count, stddev = scanned.columns
    major, minor, stat = _header_values(data, scanned.scalars, scanned.blobs)
    return WindowsResult(time, min_, mean, max_, count, stddev, major, minor, stat)


# --------------------------------------------------------------------------------------------
# ChangesResponse


def encode_changes(
    starts: ArrayLike,
    ends: ArrayLike,
    version_major: int = 0,
    version_minor: int = 0,
    stat: tuple[int, str] | None = None,
) -> bytes:
    """Serialize a ChangesResponse carrying the ranges ``[starts[i], ends[i])``."""
    s = _time_array(starts, "starts")
    e = _time_array(ends, "ends")
    if len(s) != len(e):
        raise ValueError(f"starts and ends differ in length ({len(s)} != {len(e)})")
    return CHANGED_RANGE.encode(0x22, [s, e], prefix=_encode_header(stat, version_major, version_minor))


def decode_changes(buf: BytesLike, *, copy: bool = False) -> ChangesResult:
    """Parse a ChangesResponse into int64 range starts and ends."""
    data = as_byteview(buf)
    scanned = scan_message(data, _RESPONSE_HEADER, _RESPONSE_RECORDS, CHANGED_RANGE, copy=copy)
    starts, ends = scanned.columns
    return ChangesResult(starts, ends, *_header_values(data, scanned.scalars, scanned.blobs))


# --------------------------------------------------------------------------------------------
# NearestResponse


def encode_nearest(
    time: int | None,
    value: float | None,
    version_major: int = 0,
    version_minor: int = 0,
    stat: tuple[int, str] | None = None,
) -> bytes:
    """Serialize a NearestResponse; pass ``time=None`` (and ``value=None``) to send no point."""
    out = _encode_header(stat, version_major, version_minor)
    if time is None:
        if value is not None:
            raise ValueError("value given without time")
        return out
    t = _time_array(np.array([int(time)], dtype=np.int64))
    v = np.array([0.0 if value is None else value], dtype=np.float64)
    return out + RAW_POINT.encode(0x22, [t, v])


def decode_nearest(buf: BytesLike) -> NearestResult:
    """Parse a NearestResponse."""
    data = as_byteview(buf)
    scalars: dict[int, int] = {}
    blobs: dict[int, list[tuple[int, int]]] = {}
    _scan_fields(data, {**_RESPONSE_HEADER, 4: LEN}, scalars, blobs)
    pieces = blobs.get(4)
    time: int | None = None
    value: float | None = None
    if pieces:
        joined = b"".join(bytes(data[a:b]) for a, b in pieces)  # repeated sub-messages merge
        raw_time, raw_value = parse_record(joined, 0, len(joined), 2)
        time = to_signed(raw_time, 64)
        value = float(np.array([raw_value], dtype=np.uint64).view(np.float64)[0])
    return NearestResult(time, value, *_header_values(data, scalars, blobs))


def _scan_fields(
    data: memoryview | bytes,
    known: dict[int, int],
    scalars: dict[int, int],
    blobs: dict[int, list[tuple[int, int]]],
) -> None:
    """Read every field of a small message: known ones into ``scalars``/``blobs``, others skipped."""
    pos, end = 0, len(data)
    while pos < end:
        number, wire_type, pos = read_key(data, pos, end)
        expected = known.get(number)
        if expected is None:
            pos = skip_field(data, pos, end, number, wire_type)
        elif wire_type != expected:
            raise WireFormatError(f"field {number} has wire type {wire_type}, expected {expected}")
        elif wire_type == LEN:
            start, pos = read_length(data, pos, end, number)
            blobs.setdefault(number, []).append((start, pos))
        elif wire_type == FIXED64:
            if pos + 8 > end:
                raise WireFormatError(f"field {number}: truncated 64-bit value at byte {pos}")
            scalars[number] = int.from_bytes(data[pos : pos + 8], "little")
            pos += 8
        else:
            scalars[number], pos = read_varint(data, pos, end)


# --------------------------------------------------------------------------------------------
# InsertParams


def encode_insert(
    uuid: bytes,
    times: ArrayLike,
    values: ArrayLike,
    *,
    sync: bool = False,
    merge_policy: int = 0,
    rounding_bits: int | None = None,
) -> bytes:
    """Serialize an InsertParams message.

    Parameters
    ----------
    uuid
        The stream's 16-byte uuid.
    times, values
        Equal-length arrays of int64 ns timestamps and float64 values.
    sync
        The ``sync`` flag (servers ignore it; clients send false).
    merge_policy
        The MergePolicy enum value (NEVER=0, EQUAL=1, RETAIN=2, REPLACE=3).
    rounding_bits
        If not None, ``rounding.bits`` (int32).
    """
    t = _time_array(times)
    v = _float_array(values, len(t), "values")
    merge_policy = int(merge_policy)
    if not -(1 << 31) <= merge_policy < (1 << 31):
        raise ValueError(f"merge_policy must fit in int32, got {merge_policy}")
    head = b""
    if uuid:
        head += encode_len_field(1, bytes(uuid))
    if sync:
        head += b"\x10\x01"
    tail = b""
    if merge_policy:
        tail += b"\x20" + encode_varint(merge_policy & _U64_MAX)
    if rounding_bits is not None:
        bits = int(rounding_bits)
        if not -(1 << 31) <= bits < (1 << 31):
            raise ValueError(f"rounding_bits must fit in int32, got {bits}")
        tail += encode_len_field(5, b"\x10" + encode_varint(bits & _U64_MAX))
    return RAW_POINT.encode(0x1A, [t, v], prefix=head, suffix=tail)


def decode_insert(buf: BytesLike, *, copy: bool = False) -> InsertRequest:
    """Parse an InsertParams message (untrusted input: anything malformed raises WireFormatError)."""
    data = as_byteview(buf)
    scanned = scan_message(data, _INSERT_HEADER, _INSERT_RECORDS, RAW_POINT, copy=copy)
    times, values = scanned.columns
    uuid_pieces = scanned.blobs.get(1)
    uuid = bytes(data[uuid_pieces[-1][0] : uuid_pieces[-1][1]]) if uuid_pieces else b""
    rounding_bits = None
    for pos, end in scanned.blobs.get(5, []):
        while pos < end:
            number, wire_type, pos = read_key(data, pos, end)
            if number == 2:
                if wire_type != VARINT:
                    raise WireFormatError(f"rounding.bits has wire type {wire_type}, expected {VARINT}")
                raw, pos = read_varint(data, pos, end)
                rounding_bits = to_signed(raw, 32)
            else:
                pos = skip_field(data, pos, end, number, wire_type)
    return InsertRequest(
        uuid=uuid,
        times=times,
        values=values,
        sync=bool(scanned.scalars.get(2, 0)),
        merge_policy=to_signed(scanned.scalars.get(4, 0), 32),
        rounding_bits=rounding_bits,
    )
