"""HPACK encoding of our request headers without a dynamic table, so each header's bytes can be reused.

h2's own encoder (hpack) searches the tables and logs every header of every request, which was a tenth
of the CPU of a small call. A gRPC client sends the same few headers on every call; encoded without the
dynamic table (RFC 7541 6.1 "indexed" for exact static-table matches, 6.2.2/6.2.3 "literal without
indexing" or "never indexed" otherwise), each header's encoding depends on nothing but the header, so it
is computed once and reused. The blocks are slightly larger than with a dynamic table (tens of bytes per
request), which does not matter next to one round trip.

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
"""Distinct headers whose encoding is kept; the cache starts over when full."""


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


class StatelessHeaderEncoder:
    """Drop-in for hpack's ``Encoder`` on a client connection: no dynamic table, cached header bytes."""

    __slots__ = ("_cache", "_pending_size", "_table_size")

    def __init__(self) -> None:
        self._cache: dict[tuple[bytes, bytes], bytes] = {}
        self._table_size = 4096
        self._pending_size: int | None = None

    @property
    def header_table_size(self) -> int:
        """The largest dynamic table the peer allows (we use none of it)."""
        return self._table_size

    @header_table_size.setter
    def header_table_size(self, value: int) -> None:
        if value != self._table_size:
            self._table_size = value
            self._pending_size = value  # announced at the start of the next block (RFC 7541 4.2)

    def encode(self, headers: Iterable[tuple[bytes, bytes]], huffman: bool = True) -> bytes:
        """The header block for ``headers`` (bytes names and values, in order)."""
        cache = self._cache
        parts: list[bytes] = []
        if self._pending_size is not None:
            parts.append(_integer(self._pending_size, 5, 0x20))
            self._pending_size = None
        for header in headers:
            encoded = cache.get(header)  # type: ignore[call-overload]
            if encoded is None:
                name, value = header
                encoded = encode_header(bytes(name), bytes(value))
                if name not in _UNCACHED:
                    if len(cache) >= MAX_CACHED:
                        cache.clear()
                    cache[(name, value)] = encoded
            parts.append(encoded)
        return b"".join(parts)
