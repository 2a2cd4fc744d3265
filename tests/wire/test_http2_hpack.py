"""HPACK: RFC 7541 Appendix C, round trips with the ``hpack`` package as the oracle, malformed blocks."""

from __future__ import annotations

import hpack as oracle
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pingthings.wire.http2.frames import ErrorCode
from pingthings.wire.http2.hpack import (
    STATIC_TABLE,
    HeaderDecoder,
    HeaderEncoder,
    HeaderListTooLarge,
    HpackError,
)

H = list[tuple[bytes, bytes]]


def test_static_table_matches_the_oracle() -> None:
    assert list(STATIC_TABLE) == [tuple(entry) for entry in oracle.table.HeaderTable.STATIC_TABLE]


# RFC 7541 C.3 (literals) and C.4 (the same requests, Huffman coded), decoded on one connection each.
C3 = [
    "828684410f7777772e6578616d706c652e636f6d",
    "828684be58086e6f2d6361636865",
    "828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565",
]
C4 = [
    "828684418cf1e3c2e5f23a6ba0ab90f4ff",
    "828684be5886a8eb10649cbf",
    "828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf",
]
REQUESTS: list[H] = [
    [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"), (b":authority", b"www.example.com")],
    [
        (b":method", b"GET"),
        (b":scheme", b"http"),
        (b":path", b"/"),
        (b":authority", b"www.example.com"),
        (b"cache-control", b"no-cache"),
    ],
    [
        (b":method", b"GET"),
        (b":scheme", b"https"),
        (b":path", b"/index.html"),
        (b":authority", b"www.example.com"),
        (b"custom-key", b"custom-value"),
    ],
]


@pytest.mark.parametrize("blocks", [C3, C4], ids=["C.3", "C.4"])
def test_rfc7541_appendix_c_requests(blocks: list[str]) -> None:
    decoder = HeaderDecoder()
    for block, expected in zip(blocks, REQUESTS, strict=True):
        assert decoder.decode(bytes.fromhex(block)) == expected
    assert decoder.table == [
        (b"custom-key", b"custom-value"),
        (b"cache-control", b"no-cache"),
        (b":authority", b"www.example.com"),
    ]
    assert decoder.table_size == 164


def test_rfc7541_c5_responses_evict_with_a_256_byte_table() -> None:
    responses: list[H] = [
        [
            (b":status", b"302"),
            (b"cache-control", b"private"),
            (b"date", b"Mon, 21 Oct 2013 20:13:21 GMT"),
            (b"location", b"https://www.example.com"),
        ],
        [
            (b":status", b"307"),
            (b"cache-control", b"private"),
            (b"date", b"Mon, 21 Oct 2013 20:13:21 GMT"),
            (b"location", b"https://www.example.com"),
        ],
        [
            (b":status", b"200"),
            (b"cache-control", b"private"),
            (b"date", b"Mon, 21 Oct 2013 20:13:22 GMT"),
            (b"location", b"https://www.example.com"),
            (b"content-encoding", b"gzip"),
            (b"set-cookie", b"foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"),
        ],
    ]
    for huffman in (False, True):
        encoder = oracle.Encoder()
        encoder.header_table_size = 256
        decoder = HeaderDecoder(max_table_size=256)
        decoder.max_table_size = 256
        for headers in responses:
            assert decoder.decode(encoder.encode(headers, huffman=huffman)) == headers
        assert decoder.table_size == 215  # RFC 7541 C.5.3 / C.6.3
        assert [name for name, _ in decoder.table] == [b"set-cookie", b"content-encoding", b"date"]


header_names = st.sampled_from(
    [b":path", b"content-type", b"grpc-timeout", b"x-custom", b"authorization", b"te"]
)
header_values = st.binary(max_size=40).map(lambda b: bytes(c % 94 + 33 for c in b))
header_lists = st.lists(st.tuples(header_names, header_values), max_size=10)


@given(st.lists(header_lists, min_size=1, max_size=6), st.booleans(), st.integers(0, 512))
def test_decoder_follows_the_oracle_encoder_over_many_blocks(
    lists: list[H], huffman: bool, table: int
) -> None:
    encoder = oracle.Encoder()
    decoder = HeaderDecoder()
    encoder.header_table_size = table  # emits a size update at the start of the next block
    for headers in lists:
        assert decoder.decode(encoder.encode(headers, huffman=huffman)) == headers
        assert decoder.decode(encoder.encode(headers, huffman=huffman)) == headers  # cached path


@given(header_lists)
def test_encoder_output_decodes_with_the_oracle_and_with_ours(headers: H) -> None:
    block = HeaderEncoder().encode(headers)
    assert [tuple(h) for h in oracle.Decoder().decode(block, raw=True)] == headers
    assert HeaderDecoder().decode(block) == headers


def test_encoder_uses_static_indexes_never_indexed_credentials_and_caches() -> None:
    encoder = HeaderEncoder()
    assert encoder.encode([(b":status", b"200")]) == b"\x88"
    assert encoder.encode([(b"authorization", b"k")]) == b"\x1f\x08\x01k"  # never indexed, name index 23
    block = encoder.encode_cached("ok", [(b"grpc-status", b"0")])
    assert encoder.encode_cached("ok", [(b"ignored", b"")]) is block
    assert HeaderDecoder().decode(block) == [(b"grpc-status", b"0")]
    long_value = b"v" * 300
    assert HeaderDecoder().decode(encoder.encode([(b"x", long_value)])) == [(b"x", long_value)]


def test_cached_blocks_are_only_reused_while_the_table_is_unchanged() -> None:
    decoder = HeaderDecoder()
    indexed = b"\xbe"  # dynamic index 62
    assert decoder.decode(b"\x40\x01a\x01b" + indexed) == [(b"a", b"b"), (b"a", b"b")]
    assert decoder.decode(indexed) == [(b"a", b"b")]
    assert decoder.decode(b"\x40\x01c\x01d") == [(b"c", b"d")]
    assert decoder.decode(indexed) == [(b"c", b"d")]


@pytest.mark.parametrize(
    ("block", "words"),
    [
        (b"\x80", "index 0"),
        (b"\xbe", "past the end"),
        (b"\xff", "ends inside an integer"),
        (b"\xff\xff\xff\xff\xff\xff\xff\x01", "too large"),
        (b"\x00\x05ab", "runs past the end"),
        (b"\x00", "ends before a string"),
        (b"\x00\x81\x00\x00", "Huffman"),  # padding of zero bits is invalid
        (b"\x00\x84\xff\xff\xff\xff\x00", "Huffman"),  # EOS / over-long padding
        (b"\x3f\xe2\x1f", "exceeds the maximum"),  # size update to 4097
        (b"\x82\x20", "after the first field"),
    ],
)
def test_malformed_blocks_raise_compression_errors(block: bytes, words: str) -> None:
    with pytest.raises(HpackError, match=words) as caught:
        HeaderDecoder().decode(block)
    assert caught.value.code == ErrorCode.COMPRESSION_ERROR


def test_header_list_limit_is_enforced_while_decoding() -> None:
    decoder = HeaderDecoder(max_header_list_size=100)
    block = HeaderEncoder().encode([(b"x", b"y" * 30), (b"x", b"y" * 30)])
    with pytest.raises(HeaderListTooLarge, match="more than 100"):
        decoder.decode(block)
    assert decoder.decode(HeaderEncoder().encode([(b"x", b"y" * 30)])) == [(b"x", b"y" * 30)]


def test_lowering_the_table_size_evicts() -> None:
    decoder = HeaderDecoder()
    decoder.decode(b"\x40\x01a\x01b\x40\x01c\x01d")
    assert decoder.table_size == 68
    decoder.decode(b"\x22")  # size update to 2: everything goes
    assert decoder.table == [] and decoder.table_size == 0
    decoder.max_table_size = 0
    with pytest.raises(HpackError, match="exceeds the maximum 0"):
        decoder.decode(b"\x21")
