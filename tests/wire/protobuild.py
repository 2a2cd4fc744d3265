"""A tiny, independent protobuf writer and hypothesis strategies for arbitrary valid encodings.

The codecs under test are checked against google protobuf's parser; these helpers only produce
byte strings (in any field order, with omissions, duplicates, unknown fields and non-minimal
varints) for protobuf and the codecs to read.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from hypothesis import strategies as st

U64 = (1 << 64) - 1


def varint(value: int, pad: int = 0) -> bytes:
    """Encode ``value`` (taken modulo 2**64) as a varint with up to ``pad`` redundant bytes (10 at most)."""
    value &= U64
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if not value:
            out.append(low)
            break
        out.append(low | 0x80)
    pad = min(pad, 10 - len(out))
    if pad:
        out[-1] |= 0x80
        out += b"\x80" * (pad - 1) + b"\x00"
    return bytes(out)


def key(number: int, wire_type: int) -> bytes:
    return varint((number << 3) | wire_type)


def f_varint(number: int, value: int) -> bytes:
    return key(number, 0) + varint(value)


def f_fixed64(number: int, value: int) -> bytes:
    return key(number, 1) + struct.pack("<Q", value & U64)


def f_len(number: int, payload: bytes, pad: int = 0) -> bytes:
    return key(number, 2) + varint(len(payload), pad) + payload


def bits_to_float(bits: int) -> float:
    return struct.unpack("<d", struct.pack("<Q", bits))[0]


def float_to_bits(value: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", value))[0]


#: 64-bit patterns for doubles, weighted towards the awkward ones.
SPECIAL_BITS = [
    0,
    1 << 63,
    0x7FF0000000000000,
    0xFFF0000000000000,
    0x7FF8000000000000,
    0x7FF0000000000001,
    0xFFFFFFFFFFFFFFFF,
    0x0000000000000001,
    float_to_bits(1.0),
    float_to_bits(-2.5),
]
double_bits = st.one_of(st.sampled_from(SPECIAL_BITS), st.integers(0, U64))
int64s = st.one_of(
    st.sampled_from([0, -1, 1, -(1 << 63), (1 << 63) - 1, -(16 << 56), (48 << 56) - 1]),
    st.integers(-(1 << 63), (1 << 63) - 1),
)
u64s = st.one_of(st.sampled_from([0, 1, U64]), st.integers(0, U64))


@st.composite
def unknown_field(draw: st.DrawFn, numbers: list[int], depth: int = 0) -> bytes:
    """One field with a number from ``numbers`` and a random wire type (groups included)."""
    number = draw(st.sampled_from(numbers))
    kinds = ["varint", "fixed64", "fixed32", "len"] + (["group"] if depth < 2 else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "varint":
        return key(number, 0) + varint(draw(u64s), draw(st.integers(0, 2)))
    if kind == "fixed64":
        return key(number, 1) + draw(st.binary(min_size=8, max_size=8))
    if kind == "fixed32":
        return key(number, 5) + draw(st.binary(min_size=4, max_size=4))
    if kind == "len":
        return f_len(number, draw(st.binary(max_size=12)), draw(st.integers(0, 1)))
    inner = draw(st.lists(unknown_field(numbers, depth + 1), max_size=2))
    return key(number, 3) + b"".join(inner) + key(number, 4)


@dataclass(frozen=True)
class Shape:
    """Field numbers of a point-bearing message, for building arbitrary encodings of it."""

    header: dict[int, str]  # field number -> "u64", "bool", "enum", "bytes", "status", "round"
    records_field: int
    record_fields: int  # every record field is 64-bit fixed width, numbered 1..record_fields
    repeated: bool = True

    @property
    def unknown_numbers(self) -> list[int]:
        known = {*self.header, self.records_field}
        return [n for n in (5, 6, 7, 9, 15, 16, 100, 2047, 2048, (1 << 29) - 1) if n not in known]


@st.composite
def record(draw: st.DrawFn, nfields: int, full: bool = False) -> bytes:
    """The payload of one point record: fields in random order, some omitted, some repeated."""
    if full:
        return b"".join(f_fixed64(n, draw(double_bits)) for n in range(1, nfields + 1))
    numbers = [*range(nfields + 1, nfields + 4), 100, 2048]
    parts = draw(
        st.lists(
            st.one_of(
                st.builds(f_fixed64, st.integers(1, nfields), double_bits),
                unknown_field(numbers),
            ),
            max_size=nfields + 3,
        )
    )
    return b"".join(parts)


@st.composite
def submessage(draw: st.DrawFn, kind: str) -> bytes:
    """A ``Status`` or ``RoundSpec`` body with random content and unknown fields."""
    parts: list[bytes] = []
    if kind == "status":
        candidates = [
            st.builds(f_varint, st.just(1), st.one_of(st.integers(0, 600), u64s)),
            st.builds(lambda s: f_len(2, s.encode()), st.text(max_size=8)),
            unknown_field([4, 5, 16]),
        ]
    else:
        candidates = [
            st.builds(f_varint, st.just(2), st.one_of(st.integers(-(1 << 31), (1 << 31) - 1), u64s)),
            unknown_field([1, 3, 16]),
        ]
    parts = draw(st.lists(st.one_of(*candidates), max_size=4))
    return b"".join(parts)


@st.composite
def header_field(draw: st.DrawFn, number: int, kind: str) -> bytes:
    if kind in ("u64", "bool", "enum"):
        value = draw(u64s if kind != "bool" else st.one_of(st.integers(0, 2), u64s))
        if kind == "enum":
            value = draw(st.one_of(st.integers(-(1 << 31), (1 << 31) - 1), st.just(value)))
        return key(number, 0) + varint(value, draw(st.integers(0, 1)))
    if kind == "bytes":
        return f_len(number, draw(st.binary(max_size=20)))
    return f_len(number, draw(submessage(kind)))


@st.composite
def message(draw: st.DrawFn, shape: Shape, max_records: int = 12) -> bytes:
    """A valid encoding of a message of ``shape`` with its fields in random order."""
    pieces: list[bytes] = []
    for number, kind in shape.header.items():
        pieces += draw(st.lists(header_field(number, kind), max_size=2))
    count = draw(st.integers(0, max_records if shape.repeated else 2))
    full = draw(st.booleans())
    for _ in range(count):
        payload = draw(record(shape.record_fields, full=full))
        pieces.append(f_len(shape.records_field, payload, draw(st.sampled_from([0, 0, 0, 1]))))
    pieces += draw(st.lists(unknown_field(shape.unknown_numbers), max_size=3))
    order = draw(st.permutations(range(len(pieces)))) if draw(st.booleans()) else range(len(pieces))
    return b"".join(pieces[i] for i in order)
