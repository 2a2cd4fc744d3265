"""The stateless request-header encoder produces blocks any HPACK decoder reads back exactly."""

from __future__ import annotations

import hpack
import pytest

from pingthings.timeseries.transport.header_encoder import MAX_CACHED, StatelessHeaderEncoder, encode_header
from pingthings.timeseries.transport.metadata import request_headers

HEADERS = request_headers(
    method="/v5api.BTrDB/Info",
    authority="db.example.com:4411",
    scheme="https",
    timeout=1.5,
    metadata=[
        (b"authorization", b"Bearer key"),
        (b"x-api-client", b"pingthings"),
        (b"trace-bin", b"A" * 300),
    ],
)


def test_blocks_decode_to_the_same_headers() -> None:
    encoder, decoder = StatelessHeaderEncoder(), hpack.Decoder()
    for _ in range(3):  # the second and third blocks come from the cache
        assert decoder.decode(encoder.encode(HEADERS), raw=True) == HEADERS


def test_nothing_enters_the_dynamic_table_and_secrets_are_never_indexed() -> None:
    decoder = hpack.Decoder()
    decoded = decoder.decode(StatelessHeaderEncoder().encode(HEADERS), raw=True)
    assert len(decoder.header_table.dynamic_entries) == 0
    (authorization,) = [h for h in decoded if h[0] == b"authorization"]
    assert isinstance(authorization, hpack.NeverIndexedHeaderTuple)


def test_table_size_change_is_announced_once() -> None:
    encoder, decoder = StatelessHeaderEncoder(), hpack.Decoder()
    encoder.header_table_size = 0
    decoder.max_allowed_table_size = 0
    first = encoder.encode(HEADERS)
    assert first[0] == 0x20  # dynamic table size update to 0
    assert decoder.decode(first, raw=True) == HEADERS
    assert encoder.encode(HEADERS)[0] != 0x20


@pytest.mark.parametrize("length", [0, 126, 127, 128, 20_000])
def test_long_values_use_multi_byte_lengths(length: int) -> None:
    header = (b"x-long", b"v" * length)
    assert hpack.Decoder().decode(encode_header(*header), raw=True) == [header]


def test_the_cache_is_bounded() -> None:
    encoder = StatelessHeaderEncoder()
    for index in range(MAX_CACHED + 10):
        encoder.encode([(b"x-n", str(index).encode())])
    assert len(encoder._cache) <= MAX_CACHED
