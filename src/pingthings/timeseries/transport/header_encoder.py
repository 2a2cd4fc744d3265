"""HPACK encoding of our request headers with cached bytes per header.

h2's own encoder (hpack) searches the tables and logs every header of every request, which was a tenth
of the CPU of a small call. A gRPC client sends the same few headers on every call. Here the dynamic
table only grows (nothing is evicted), so a header stored in it keeps its place relative to the others
and its one- or two-byte reference can be computed once; it changes only when another header is added,
which stops happening after the first calls. The server then decodes table references, as with any
encoder that indexes, rather than literals. Headers that change per call (``grpc-timeout``) and secrets
(``authorization``, sent "never indexed") stay out of the table.

The encoder replaces ``H2Connection.encoder``; h2 only calls :meth:`encode` and sets
:attr:`header_table_size`.
"""

from __future__ import annotations

from collections.abc import Iterable

# RFC 7541 Appendix A: the static-table entries a gRPC request can use.
_STATIC_EXACT = {
    (b":method", b"POST"): 3,
    (b":path", b"/"): 4,
    (b":scheme", b"http"): 6,
    (b":scheme", b"https"): 7,
}
_STATIC_NAME = {
    b":authority": 1,
    b":method": 2,
    b":path": 4,
    b":scheme": 6,
    b"accept-encoding": 16,
    b"authorization": 23,
    b"content-encoding": 26,
    b"content-type": 31,
    b"user-agent": 58,
}
_SENSITIVE = frozenset({b"authorization", b"proxy-authorization"})
"""Headers sent as "never indexed", so that no intermediary stores them in a compression table."""

_UNCACHED = frozenset({b"grpc-timeout"})
"""Headers whose value changes from call to call: encoded each time, not kept."""

MAX_CACHED = 4096
"""Distinct headers whose encoding is kept (and most entries put in the dynamic table)."""


def _integer(value: int, prefix_bits: int, first_byte: int) -> bytes:
    """An HPACK integer with an N-bit prefix, the prefix's other bits taken from ``first_byte``."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((first_byte | value,))
    out = bytearray((first_byte | limit,))
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _string(value: bytes) -> bytes:
    """An HPACK string literal, not Huffman-coded."""
    return _integer(len(value), 7, 0x00) + value


def encode_header(name: bytes, value: bytes) -> bytes:
    """The HPACK representation of one header that leaves the dynamic table untouched."""
    index = _STATIC_EXACT.get((name, value))
    if index is not None:
        return _integer(index, 7, 0x80)
    first = 0x10 if name in _SENSITIVE else 0x00  # never indexed / without indexing
    name_index = _STATIC_NAME.get(name)
    if name_index is not None:
        return _integer(name_index, 4, first) + _string(value)
    return bytes((first,)) + _string(name) + _string(value)


class CachingHeaderEncoder:
    """Drop-in for hpack's ``Encoder`` on a client connection: cached header bytes, an append-only table.

    A header the peer can store is sent once as "literal with incremental indexing" and from then on as a
    one- or two-byte reference into the dynamic table; nothing is ever evicted, so references stay valid
    and their bytes can be cached. Once the table is full, or for headers that change per call
    (``grpc-timeout``) or are secret (``authorization``), literals that leave the table alone are sent.
    """

    __slots__ = ("_cache", "_entries", "_pending_size", "_table_size", "_used")

    def __init__(self) -> None:
        self._cache: dict[tuple[bytes, bytes], bytes] = {}
        self._entries: dict[tuple[bytes, bytes], int] = {}  # header -> insertion number
        self._used = 0  # bytes of the dynamic table in use (RFC 7541 4.1: name + value + 32 per entry)
        self._table_size = 4096
        self._pending_size: int | None = None

    @property
    def header_table_size(self) -> int:
        """The largest dynamic table the peer allows."""
        return self._table_size

    @header_table_size.setter
    def header_table_size(self, value: int) -> None:
        if value != self._table_size:
            self._table_size = value
            # Start over with an empty table: announce size 0 (evicting everything), then the new size.
            self._pending_size = value
            self._entries.clear()
            self._cache.clear()
            self._used = 0

    def encode(self, headers: Iterable[tuple[bytes, bytes]], huffman: bool = True) -> bytes:
        """The header block for ``headers`` (bytes names and values, in order)."""
        cache = self._cache
        parts: list[bytes] = []
        if self._pending_size is not None:
            parts.append(_integer(0, 5, 0x20))
            parts.append(_integer(self._pending_size, 5, 0x20))
            self._pending_size = None
        for header in headers:
            encoded = cache.get(header)  # type: ignore[call-overload]
            if encoded is None:
                encoded = self._encode_new(header)
            parts.append(encoded)
        return b"".join(parts)

    def _encode_new(self, header: tuple[bytes, bytes]) -> bytes:
        """Encode a header not in the cache (adding it to the dynamic table when it fits)."""
        name, value = bytes(header[0]), bytes(header[1])
        key = (name, value)
        if name in _UNCACHED:
            return encode_header(name, value)
        size = len(name) + len(value) + 32
        storable = key not in _STATIC_EXACT and name not in _SENSITIVE
        if not storable or self._used + size > self._table_size or len(self._entries) >= MAX_CACHED:
            encoded = encode_header(name, value)  # without indexing: the table stays as it is
            if len(self._cache) >= MAX_CACHED:
                self._cache = {h: b for h, b in self._cache.items() if h in self._entries}
            self._cache[key] = encoded
            return encoded
        # Literal with incremental indexing: the peer adds it to its table as we do.
        name_index = _STATIC_NAME.get(name)
        head = _integer(name_index, 6, 0x40) if name_index is not None else b"\x40" + _string(name)
        self._entries[key] = len(self._entries)
        self._used += size
        for stored in self._entries:  # every reference now points one entry further
            self._cache[stored] = self._reference(stored)
        return head + _string(value)

    def _reference(self, header: tuple[bytes, bytes]) -> bytes:
        """The indexed representation of a header in the dynamic table (the newest entry is index 62)."""
        position = len(self._entries) - 1 - self._entries[header]
        return _integer(62 + position, 7, 0x80)
