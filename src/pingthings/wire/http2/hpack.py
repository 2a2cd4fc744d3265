"""HPACK header compression (RFC 7541): a complete decoder and a stateless encoder.

The decoder keeps the dynamic table the peer's encoder drives. Two bounded caches make a gRPC peer's
steady state cheap: whole header blocks that leave the dynamic table untouched (a peer that indexed its
headers sends the same few bytes on every call) and Huffman-coded strings. Huffman decoding itself
uses the ``hpack`` package's table-driven decoder.

The encoder never inserts into the dynamic table, so it shares no state with the peer and a block it
produced once stays valid for the whole connection (and for every connection): see
:meth:`HeaderEncoder.encode_cached`.
"""

from __future__ import annotations

from collections import deque

from hpack.exceptions import HPACKDecodingError
from hpack.huffman_table import decode_huffman

from pingthings.wire.http2.frames import ConnectionProtocolError, ErrorCode

Header = tuple[bytes, bytes]

STATIC_TABLE: tuple[Header, ...] = tuple(
    (name.encode(), value.encode())
    for name, value in (
        (":authority", ""),
        (":method", "GET"),
        (":method", "POST"),
        (":path", "/"),
        (":path", "/index.html"),
        (":scheme", "http"),
        (":scheme", "https"),
        (":status", "200"),
        (":status", "204"),
        (":status", "206"),
        (":status", "304"),
        (":status", "400"),
        (":status", "404"),
        (":status", "500"),
        ("accept-charset", ""),
        ("accept-encoding", "gzip, deflate"),
        ("accept-language", ""),
        ("accept-ranges", ""),
        ("accept", ""),
        ("access-control-allow-origin", ""),
        ("age", ""),
        ("allow", ""),
        ("authorization", ""),
        ("cache-control", ""),
        ("content-disposition", ""),
        ("content-encoding", ""),
        ("content-language", ""),
        ("content-length", ""),
        ("content-location", ""),
        ("content-range", ""),
        ("content-type", ""),
        ("cookie", ""),
        ("date", ""),
        ("etag", ""),
        ("expect", ""),
        ("expires", ""),
        ("from", ""),
        ("host", ""),
        ("if-match", ""),
        ("if-modified-since", ""),
        ("if-none-match", ""),
        ("if-range", ""),
        ("if-unmodified-since", ""),
        ("last-modified", ""),
        ("link", ""),
        ("location", ""),
        ("max-forwards", ""),
        ("proxy-authenticate", ""),
        ("proxy-authorization", ""),
        ("range", ""),
        ("referer", ""),
        ("refresh", ""),
        ("retry-after", ""),
        ("server", ""),
        ("set-cookie", ""),
        ("strict-transport-security", ""),
        ("transfer-encoding", ""),
        ("user-agent", ""),
        ("vary", ""),
        ("via", ""),
        ("www-authenticate", ""),
    )
)
_STATIC_COUNT = len(STATIC_TABLE)
ENTRY_OVERHEAD = 32  # RFC 7541 section 4.1
DEFAULT_TABLE_SIZE = 4096
DEFAULT_MAX_HEADER_LIST = 64 * 1024
#: Integers longer than this many continuation bytes (2**35) are rejected: no field needs them.
_MAX_INTEGER_BYTES = 5
_BLOCK_CACHE_ENTRIES = 512
_HUFFMAN_CACHE_ENTRIES = 1024
_HUFFMAN_CACHE_LONGEST = 256


class HpackError(ConnectionProtocolError):
    """A header block that cannot be decoded; the connection ends with COMPRESSION_ERROR."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.COMPRESSION_ERROR, message)


class HeaderListTooLarge(HpackError):
    """A header list above the announced SETTINGS_MAX_HEADER_LIST_SIZE (found while decoding)."""


def _integer(block: bytes, pos: int, prefix_bits: int) -> tuple[int, int]:
    """Decode the integer whose prefix is in ``block[pos]``; return it and the position after it."""
    mask = (1 << prefix_bits) - 1
    value = block[pos] & mask
    pos += 1
    if value < mask:
        return value, pos
    shift = 0
    for _ in range(_MAX_INTEGER_BYTES):
        if pos >= len(block):
            raise HpackError("a header block ends inside an integer")
        byte = block[pos]
        pos += 1
        value += (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
    raise HpackError("an integer in a header block is too large")


class HeaderDecoder:
    """Decodes the header blocks of one connection (RFC 7541).

    Parameters
    ----------
    max_table_size
        The SETTINGS_HEADER_TABLE_SIZE we announced: the peer may not grow the table beyond it.
    max_header_list_size
        The largest header list accepted, counted as RFC 9113 does (name + value + 32 per field);
        checked while decoding.
    """

    def __init__(
        self, max_table_size: int = DEFAULT_TABLE_SIZE, max_header_list_size: int = DEFAULT_MAX_HEADER_LIST
    ):
        self._max_table_size = max_table_size
        self._max_header_list_size = max_header_list_size
        self._table_size_limit = max_table_size  # the size the peer last set (starts at our maximum)
        self._dynamic: deque[Header] = deque()
        self._dynamic_size = 0
        self._generation = 0
        self._blocks: dict[tuple[int, bytes], list[Header]] = {}
        self._huffman: dict[bytes, bytes] = {}

    @property
    def max_table_size(self) -> int:
        """The dynamic table size we allow the peer (our SETTINGS_HEADER_TABLE_SIZE)."""
        return self._max_table_size

    @max_table_size.setter
    def max_table_size(self, value: int) -> None:
        self._max_table_size = value
        if self._table_size_limit > value:
            self._resize(value)

    @property
    def max_header_list_size(self) -> int:
        """The largest header list accepted."""
        return self._max_header_list_size

    @max_header_list_size.setter
    def max_header_list_size(self, value: int) -> None:
        self._max_header_list_size = value
        self._blocks.clear()

    @property
    def table(self) -> list[Header]:
        """The dynamic table, newest entry first (for inspection and tests)."""
        return list(self._dynamic)

    @property
    def table_size(self) -> int:
        """The dynamic table's size as RFC 7541 counts it."""
        return self._dynamic_size

    def decode(self, block: bytes | bytearray | memoryview) -> list[Header]:
        """The header list encoded in ``block``.

        Raises
        ------
        HpackError
            For malformed input; :class:`HeaderListTooLarge` if the list exceeds the limit.
        """
        block = bytes(block)
        key = (self._generation, block)
        cached = self._blocks.get(key)
        if cached is not None:
            return list(cached)
        start = self._generation
        headers = self._decode(block)
        if self._generation == start:
            if len(self._blocks) >= _BLOCK_CACHE_ENTRIES:
                self._blocks.clear()
            self._blocks[key] = headers
            return list(headers)
        return headers

    def _decode(self, block: bytes) -> list[Header]:
        headers: list[Header] = []
        total = 0
        limit = self._max_header_list_size
        pos = 0
        end = len(block)
        while pos < end:
            byte = block[pos]
            if byte & 0x80:  # indexed field
                index, pos = _integer(block, pos, 7)
                header = self._lookup(index)
            elif byte & 0x40:  # literal with incremental indexing
                header, pos = self._literal(block, pos, 6)
                self._add(header)
            elif byte & 0x20:  # dynamic table size update
                if headers:
                    raise HpackError("a dynamic table size update after the first field of a block")
                size, pos = _integer(block, pos, 5)
                if size > self._max_table_size:
                    raise HpackError(
                        f"a dynamic table size update to {size} exceeds the maximum {self._max_table_size}"
                    )
                self._resize(size)
                continue
            else:  # literal without indexing (0000) or never indexed (0001)
                header, pos = self._literal(block, pos, 4)
            total += len(header[0]) + len(header[1]) + ENTRY_OVERHEAD
            if total > limit:
                raise HeaderListTooLarge(f"a header list of more than {limit} bytes")
            headers.append(header)
        return headers

    def _lookup(self, index: int) -> Header:
        if index == 0:
            raise HpackError("header index 0")
        if index <= _STATIC_COUNT:
            return STATIC_TABLE[index - 1]
        offset = index - _STATIC_COUNT - 1
        if offset >= len(self._dynamic):
            raise HpackError(
                f"header index {index} is past the end of the table ({_STATIC_COUNT + len(self._dynamic)})"
            )
        return self._dynamic[offset]

    def _literal(self, block: bytes, pos: int, prefix_bits: int) -> tuple[Header, int]:
        index, pos = _integer(block, pos, prefix_bits)
        if index:
            name = self._lookup(index)[0]
        else:
            name, pos = self._string(block, pos)
        value, pos = self._string(block, pos)
        return (name, value), pos

    def _string(self, block: bytes, pos: int) -> tuple[bytes, int]:
        if pos >= len(block):
            raise HpackError("a header block ends before a string")
        huffman = block[pos] & 0x80
        length, pos = _integer(block, pos, 7)
        end = pos + length
        if end > len(block):
            raise HpackError(f"a string of {length} bytes runs past the end of the header block")
        raw = block[pos:end]
        if not huffman:
            return raw, end
        decoded = self._huffman.get(raw)
        if decoded is None:
            try:
                decoded = decode_huffman(raw)
            except HPACKDecodingError as exc:
                raise HpackError(f"invalid Huffman-coded string: {exc}") from None
            if length <= _HUFFMAN_CACHE_LONGEST:
                if len(self._huffman) >= _HUFFMAN_CACHE_ENTRIES:
                    self._huffman.clear()
                self._huffman[raw] = decoded
        return decoded, end

    def _add(self, header: Header) -> None:
        size = len(header[0]) + len(header[1]) + ENTRY_OVERHEAD
        self._generation += 1
        limit = self._table_size_limit
        if size > limit:
            self._dynamic.clear()
            self._dynamic_size = 0
            return
        while self._dynamic_size + size > limit:
            name, value = self._dynamic.pop()
            self._dynamic_size -= len(name) + len(value) + ENTRY_OVERHEAD
        self._dynamic.appendleft(header)
        self._dynamic_size += size

    def _resize(self, size: int) -> None:
        self._generation += 1
        self._table_size_limit = size
        while self._dynamic_size > size:
            name, value = self._dynamic.pop()
            self._dynamic_size -= len(name) + len(value) + ENTRY_OVERHEAD


_STATIC_EXACT: dict[Header, int] = {}
_STATIC_NAME: dict[bytes, int] = {}
for _index, _header in enumerate(STATIC_TABLE, start=1):
    _STATIC_EXACT.setdefault(_header, _index)
    _STATIC_NAME.setdefault(_header[0], _index)

#: Fields sent "never indexed" (RFC 7541 section 7.1.3): intermediaries must not compress them either.
SENSITIVE = frozenset({b"authorization", b"proxy-authorization", b"cookie", b"set-cookie"})


def _encode_integer(value: int, prefix_bits: int, first: int) -> bytes:
    mask = (1 << prefix_bits) - 1
    if value < mask:
        return bytes((first | value,))
    out = bytearray((first | mask,))
    value -= mask
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


class HeaderEncoder:
    """Encodes header lists without touching the dynamic table (no state shared with the peer).

    Fields in the static table are sent as indexes, others as literals "without indexing" ("never
    indexed" for credentials), strings raw (no Huffman coding: it costs CPU and gRPC headers are short).
    """

    def __init__(self) -> None:
        self._cached: dict[object, bytes] = {}

    def encode(self, headers: list[Header] | tuple[Header, ...]) -> bytes:
        """The header block for ``headers`` (names must already be lower case)."""
        out = bytearray()
        for name, value in headers:
            index = _STATIC_EXACT.get((name, value))
            if index is not None:
                out += _encode_integer(index, 7, 0x80)
                continue
            first = 0x10 if name in SENSITIVE else 0x00
            name_index = _STATIC_NAME.get(name)
            if name_index is not None:
                out += _encode_integer(name_index, 4, first)
            else:
                out.append(first)
                out += _encode_integer(len(name), 7, 0)
                out += name
            out += _encode_integer(len(value), 7, 0)
            out += value
        return bytes(out)

    def encode_cached(self, key: object, headers: list[Header] | tuple[Header, ...]) -> bytes:
        """The block for ``headers``, encoded on the first call with ``key`` and reused afterwards.

        For constant header lists (a reply's ``:status``/``content-type``, ``grpc-status: 0``
        trailers): the encoder is stateless, so the block is valid for any connection.
        """
        block = self._cached.get(key)
        if block is None:
            block = self._cached[key] = self.encode(headers)
        return block
