"""Scan a message whose repeated field holds fixed-width point records, and decode those records.

Point-bearing messages (RawValuesResponse, the StatPoint responses, InsertParams,
ChangesResponse) are a few header fields plus one repeated sub-message field whose every field
is a 64-bit fixed-width value (``sfixed64``, ``double`` or ``fixed64``). When a record carries all
of its fields in field order, it has a fixed size, so a run of such records can be viewed as a
numpy structured array without copying (the *block* path). Anything else (proto3 omitted a zero
field, the fields are in another order, unknown fields) takes the *generic* path: a Python walk
records the start and length of each record, and numpy gathers the 9-byte fields of all those
records at once. Records that even that cannot read (unknown fields, odd lengths) are parsed one
by one in Python.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pingthings.wire.protowire import (
    FIXED64,
    LEN,
    WireFormatError,
    fixed64_at,
    read_key,
    read_length,
    read_varint,
    skip_field,
)

#: Records longer than this many 9-byte slots go to the per-record Python parser.
_EXTRA_SLOTS = 2


@dataclass(frozen=True)
class RecordLayout:
    """The fields of a point record: every one a 64-bit fixed-width value, numbered 1, 2, ...

    Parameters
    ----------
    names
        Field names in field-number order.
    dtypes
        The numpy dtype of each field (little-endian, 8 bytes).
    """

    names: tuple[str, ...]
    dtypes: tuple[str, ...]
    _cache: dict[int, np.dtype] = field(default_factory=dict, compare=False, repr=False)

    @property
    def nfields(self) -> int:
        """Number of fields in a record."""
        return len(self.names)

    @property
    def payload_size(self) -> int:
        """Bytes in a record's payload when every field is present."""
        return 9 * self.nfields

    @property
    def stride(self) -> int:
        """Bytes of one full record including its key and one-byte length."""
        return 2 + self.payload_size

    def block_dtype(self, record_key: int) -> np.dtype:
        """A packed structured dtype that views full records with key ``record_key``."""
        cached = self._cache.get(record_key)
        if cached is None:
            parts: list[tuple[str, str]] = [("_key", "u1"), ("_len", "u1")]
            for name, dtype in zip(self.names, self.dtypes, strict=True):
                parts += [(f"_{name}_key", "u1"), (name, dtype)]
            cached = np.dtype(parts)
            self._cache[record_key] = cached
        return cached

    def encode(
        self, record_key: int, columns: list[np.ndarray], prefix: bytes = b"", suffix: bytes = b""
    ) -> bytes:
        """Encode full records (every field written, zeros included) for equal-length ``columns``.

        ``prefix`` and ``suffix`` (other fields of the message) are written around the records in
        the same buffer, so the point data is copied only once into the returned ``bytes``.
        """
        n = len(columns[0]) if columns else 0
        head = len(prefix)
        size = n * self.stride
        buffer = np.empty(head + size + len(suffix), dtype=np.uint8)
        buffer[:head] = np.frombuffer(prefix, dtype=np.uint8)
        buffer[head + size :] = np.frombuffer(suffix, dtype=np.uint8)
        records = buffer[head : head + size].view(self.block_dtype(record_key))
        records["_key"] = record_key
        records["_len"] = self.payload_size
        for k, (name, column) in enumerate(zip(self.names, columns, strict=True)):
            records[f"_{name}_key"] = ((k + 1) << 3) | FIXED64
            records[name] = column
        return buffer.tobytes()


@dataclass
class ScannedMessage:
    """What :func:`scan_message` found in one message.

    Attributes
    ----------
    scalars
        The last value of each known VARINT or FIXED64 field, as an unsigned integer.
    blobs
        The ``(start, end)`` of every occurrence of each known length-delimited field, in order.
    columns
        The repeated record field decoded into one array per record field (empty if absent).
    """

    scalars: dict[int, int]
    blobs: dict[int, list[tuple[int, int]]]
    columns: tuple[np.ndarray, ...]


def scan_message(
    data: memoryview | bytes,
    known: dict[int, int],
    records_field: int,
    layout: RecordLayout,
    *,
    copy: bool = False,
) -> ScannedMessage:
    """Read a message's header fields and decode its repeated point-record field.

    Parameters
    ----------
    data
        The serialized message (``bytes`` or a byte memoryview).
    known
        Wire type of every known field other than ``records_field``; other fields are skipped.
    records_field
        Number (1..15) of the repeated record field.
    layout
        The layout of one record.
    copy
        If false, a message whose records are one run of full records yields read-only views into
        ``data``.

    Raises
    ------
    WireFormatError
        If the bytes are not a valid encoding.
    """
    end = len(data)
    u8 = np.frombuffer(data, dtype=np.uint8)
    record_key = (records_field << 3) | LEN
    scalars: dict[int, int] = {}
    blobs: dict[int, list[tuple[int, int]]] = {}
    pieces: list[tuple[np.ndarray, np.ndarray]] = []  # (payload starts, payload lengths) in order
    block: tuple[int, int] | None = None  # (position, count) of a lone run of full records
    chains: _RecordChains | None = None
    pos = 0
    while pos < end:
        if data[pos] == record_key:
            if block is None and not pieces:
                count = _full_record_run(u8, pos, end, layout, record_key)
                if count:
                    block = (pos, count)
                    pos += count * layout.stride
                    continue
            if block is not None:
                block_starts = block[0] + 2 + layout.stride * np.arange(block[1], dtype=np.int64)
                pieces.append((block_starts, np.full(block[1], layout.payload_size, dtype=np.int64)))
                block = None
            if chains is None:
                chains = _RecordChains(u8, end, record_key, layout)
            found, pos_after = chains.follow(pos)
            if found:
                pieces.extend(found)
                pos = pos_after
                continue
        number, wire_type, pos = read_key(data, pos, end)
        if number == records_field:
            if wire_type != LEN:
                raise WireFormatError(f"field {records_field} has wire type {wire_type}, expected {LEN}")
            payload, pos = read_length(data, pos, end, number)
            pieces.append((np.array([payload], dtype=np.int64), np.array([pos - payload], dtype=np.int64)))
            continue
        expected_type = known.get(number)
        if expected_type is None:
            pos = skip_field(data, pos, end, number, wire_type)
        elif wire_type != expected_type:
            raise WireFormatError(f"field {number} has wire type {wire_type}, expected {expected_type}")
        elif wire_type == LEN:
            start, pos = read_length(data, pos, end, number)
            blobs.setdefault(number, []).append((start, pos))
        elif wire_type == FIXED64:
            if pos + 8 > end:
                raise WireFormatError(f"field {number}: truncated 64-bit value at byte {pos}")
            scalars[number] = fixed64_at(data, pos)
            pos += 8
        else:
            scalars[number], pos = read_varint(data, pos, end)

    dtypes = [np.dtype(d) for d in layout.dtypes]
    if block is not None:
        view = np.frombuffer(data, dtype=layout.block_dtype(record_key), count=block[1], offset=block[0])
        columns = tuple(np.array(view[name]) if copy else view[name] for name in layout.names)
    elif pieces:
        starts = np.concatenate([p[0] for p in pieces]) if len(pieces) > 1 else pieces[0][0]
        lengths = np.concatenate([p[1] for p in pieces]) if len(pieces) > 1 else pieces[0][1]
        matrix = decode_records(data, u8, starts, lengths, layout)
        columns = tuple(np.ascontiguousarray(matrix[:, k]).view(d) for k, d in enumerate(dtypes))
    else:
        columns = tuple(np.empty(0, dtype=d) for d in dtypes)
    return ScannedMessage(scalars, blobs, columns)


def _full_record_run(u8: np.ndarray, pos: int, end: int, layout: RecordLayout, record_key: int) -> int:
    """Count the full records that follow one another from ``pos``, checking every header byte.

    The record key, its length and the first field key are checked as one masked 32-bit word per
    record; the other field keys one byte column at a time (strided views, no copies).
    """
    stride = layout.stride
    count = (end - pos) // stride
    if count == 0:
        return 0
    first_word = record_key | (layout.payload_size << 8) | ((1 << 3 | FIXED64) << 16)
    head = np.ndarray((count,), dtype="<u4", buffer=u8, offset=pos, strides=(stride,))
    good = (head & 0xFFFFFF) == first_word
    for k in range(1, layout.nfields):
        column = np.ndarray((count,), dtype=np.uint8, buffer=u8, offset=pos + 2 + 9 * k, strides=(stride,))
        good &= column == (((k + 1) << 3) | FIXED64)
    return count if good.all() else int(np.argmin(good))


class _RecordChains:
    """Every position that could start a *plain* record, and how plain records chain together.

    A plain record has a one-byte length that is a multiple of 9 and only known 64-bit fields
    (in any order). Such byte patterns can also occur by chance inside point data, so a run of
    records is found by following the chain from a position known to start a record: from a true
    record the next true record is the candidate at ``start + 2 + length``. Consecutive candidates
    that link up are taken in bulk; a false candidate in between breaks a link, and the walk then
    jumps over it with one lookup.
    """

    def __init__(self, u8: np.ndarray, end: int, record_key: int, layout: RecordLayout) -> None:
        pos = np.flatnonzero(u8[: max(end - 1, 0)] == record_key)
        lens = u8[pos + 1].astype(np.int64)
        keep = (lens % 9 == 0) & (lens <= layout.payload_size) & (pos + 2 + lens <= end)
        pos, lens = pos[keep], lens[keep]
        valid_key = np.zeros(256, dtype=bool)
        valid_key[[((k + 1) << 3) | FIXED64 for k in range(layout.nfields)]] = True
        keep = np.ones(pos.size, dtype=bool)
        for slot in range(layout.nfields):
            rows = np.flatnonzero(lens > 9 * slot)
            if rows.size == 0:
                break
            keep[rows[~valid_key[u8[pos[rows] + 2 + 9 * slot]]]] = False
        self.pos = pos[keep]
        self.lens = lens[keep]
        self.next = self.pos + 2 + self.lens
        breaks = np.flatnonzero(self.next[:-1] != self.pos[1:])
        self.breaks = np.append(breaks, self.pos.size - 1)

    def follow(self, start: int) -> tuple[list[tuple[np.ndarray, np.ndarray]], int]:
        """Follow plain records from ``start``; return their (payload starts, lengths) and where they end."""
        found: list[tuple[np.ndarray, np.ndarray]] = []
        pos, breaks, nxt = self.pos, self.breaks, self.next
        j = int(np.searchsorted(pos, start))
        while j < pos.size and pos[j] == start:
            last = int(breaks[np.searchsorted(breaks, j)])
            found.append((pos[j : last + 1] + 2, self.lens[j : last + 1]))
            start = int(nxt[last])
            j = int(np.searchsorted(pos, start))
        return found, start


def decode_records(
    data: memoryview | bytes,
    u8: np.ndarray,
    starts: np.ndarray,
    lengths: np.ndarray,
    layout: RecordLayout,
) -> np.ndarray:
    """Decode records at the given payload starts and lengths into an ``(n, nfields)`` uint64 matrix.

    Absent fields are zero; a field given twice keeps its last value (protobuf's rule). Records made
    only of known 9-byte fields are decoded together with numpy; the rest one by one.
    """
    n = len(starts)
    nfields = layout.nfields
    out = np.zeros((n, nfields), dtype=np.uint64)
    offs = np.asarray(starts, dtype=np.int64)
    lens = np.asarray(lengths, dtype=np.int64)
    max_slots = nfields + _EXTRA_SLOTS
    simple = (lens % 9 == 0) & (lens <= 9 * max_slots)
    flat_out = out.reshape(-1)
    # Column of each possible key byte (-1: not a known 64-bit field of this record).
    column_of_key = np.full(256, -1, dtype=np.int64)
    column_of_key[[((k + 1) << 3) | FIXED64 for k in range(nfields)]] = np.arange(nfields)
    words = as_words(u8) if n else u8
    rows = np.flatnonzero(simple)
    for slot in range(max_slots):
        rows = rows[lens[rows] > 9 * slot]
        if rows.size == 0:
            break
        key_at = offs[rows] + 9 * slot
        columns = column_of_key[u8[key_at]]
        bad = columns < 0
        if bad.any():
            simple[rows[bad]] = False
            good = ~bad
            rows, key_at, columns = rows[good], key_at[good], columns[good]
        flat_out[rows * nfields + columns] = gather_u64(words, key_at + 1)
    for row in np.flatnonzero(~simple).tolist():
        first = int(offs[row])
        out[row] = parse_record(data, first, first + int(lens[row]), nfields)
    return out


def as_words(u8: np.ndarray) -> np.ndarray:
    """A copy of ``u8`` as little-endian uint64 words, zero-padded by two words for :func:`gather_u64`."""
    whole = u8.size // 8
    words = np.zeros(whole + 2, dtype="<u8")
    words[:whole] = u8[: whole * 8].view("<u8")
    words.view(np.uint8)[whole * 8 : u8.size] = u8[whole * 8 :]
    return words


def gather_u64(words: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """The little-endian uint64 values that start at the given byte positions.

    ``words`` comes from :func:`as_words`. Each value straddles at most two aligned words, which
    are shifted into place (numpy defines a shift by 64 bits as giving zero).
    """
    index = positions >> 3
    shift = ((positions & 7) << 3).astype(np.uint64)
    return (words[index] >> shift) | (words[index + 1] << (np.uint64(64) - shift))


def parse_record(data: memoryview | bytes, pos: int, end: int, nfields: int) -> list[int]:
    """Parse one record in Python: fields 1..nfields must be 64-bit; others are skipped."""
    values = [0] * nfields
    while pos < end:
        number, wire_type, pos = read_key(data, pos, end)
        if number <= nfields:
            if wire_type != FIXED64:
                raise WireFormatError(f"record field {number} has wire type {wire_type}, expected {FIXED64}")
            if pos + 8 > end:
                raise WireFormatError(f"record field {number}: truncated 64-bit value at byte {pos}")
            values[number - 1] = fixed64_at(data, pos)
            pos += 8
        else:
            pos = skip_field(data, pos, end, number, wire_type)
    return values
