"""The caching request-header encoder: blocks any HPACK decoder reads back exactly, call after call."""

from __future__ import annotations

import hpack
import pytest

from pingthings.timeseries.transport.header_encoder import CachingHeaderEncoder, encode_header
from pingthings.timeseries.transport.metadata import request_headers


def headers(method: str, timeout: float | None = 1.5, extra: int = 0) -> list[tuple[bytes, bytes]]:
    metadata = [
        (b"authorization", b"Bearer key"),
        (b"x-api-client", b"pingthings"),
        (b"trace-bin", b"A" * 300),
    ]
    metadata += [(f"x-extra-{i}".encode(), b"v" * 40) for i in range(extra)]
    return request_headers(
        method=method, authority="db.example.com:4411", scheme="https", timeout=timeout, metadata=metadata
    )


def test_blocks_decode_to_the_same_headers_call_after_call() -> None:
    encoder, decoder = CachingHeaderEncoder(), hpack.Decoder()
    sequence = [headers("/v5api.BTrDB/Info"), headers("/v5api.BTrDB/Info", 0.25)]
    sequence += [headers(f"/v5api.BTrDB/M{i}", extra=i % 3) for i in range(40)]
    sequence += [headers("/v5api.BTrDB/Info", None)] * 3
    for block in sequence:
        assert decoder.decode(encoder.encode(block), raw=True) == block


def test_repeated_calls_send_references_and_keep_secrets_out_of_the_table() -> None:
    encoder, decoder = CachingHeaderEncoder(), hpack.Decoder()
    first = encoder.encode(headers("/v5api.BTrDB/Info", None))
    second = encoder.encode(headers("/v5api.BTrDB/Info", None))
    assert len(second) < len(first) // 4
    decoder.decode(first, raw=True)
    decoded = decoder.decode(second, raw=True)
    stored = {bytes(name) for name, _ in decoder.header_table.dynamic_entries}
    assert b"authorization" not in stored and b":path" in stored
    (authorization,) = [h for h in decoded if h[0] == b"authorization"]
    assert isinstance(authorization, hpack.NeverIndexedHeaderTuple)


def test_a_full_table_is_left_alone() -> None:
    encoder, decoder = CachingHeaderEncoder(), hpack.Decoder()
    for i in range(200):  # ~150 bytes each: far more than 4096 bytes of table
        block = [(b":path", f"/p/{i}/".encode() + b"x" * 100)]
        assert decoder.decode(encoder.encode(block), raw=True) == block
    assert sum(32 + len(n) + len(v) for n, v in decoder.header_table.dynamic_entries) <= 4096
    assert len(decoder.header_table.dynamic_entries) < 40


def test_table_size_change_empties_the_table() -> None:
    encoder, decoder = CachingHeaderEncoder(), hpack.Decoder()
    block = headers("/v5api.BTrDB/Info")
    decoder.decode(encoder.encode(block), raw=True)
    encoder.header_table_size = 0
    decoder.max_allowed_table_size = 0
    for _ in range(2):
        assert decoder.decode(encoder.encode(block), raw=True) == block
    assert len(decoder.header_table.dynamic_entries) == 0


@pytest.mark.parametrize("length", [0, 126, 127, 128, 20_000])
def test_long_values_use_multi_byte_lengths(length: int) -> None:
    header = (b"x-long", b"v" * length)
    assert hpack.Decoder().decode(encode_header(*header), raw=True) == [header]
