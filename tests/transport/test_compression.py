"""Compressed gRPC messages: what stock BTrDB servers send (every reply gzip-compressed), and what the
channel sends when asked to compress requests.

The reproduction is a grpcio server that compresses every reply whatever the client advertises, as the
grpc-go server of BTrDB 4.15 does with its RPCCompressor; before the fix the channel failed with
"server sent a compressed message, but no compression was negotiated".
"""

from __future__ import annotations

import gzip
import random
import tracemalloc
import zlib

import anyio
import grpc
import pytest
from fake_h2_server import Script, start
from grpc_test_servers import method, running, stream_message, stream_request

from pingthings.timeseries.transport import Channel, TransportError
from pingthings.timeseries.transport.framing import PREFIX, FramingError, MessageReader, frame_message

pytestmark = pytest.mark.anyio

COMPRESSIONS = [grpc.Compression.Gzip, grpc.Compression.Deflate]


@pytest.fixture(scope="module", params=COMPRESSIONS, ids=["gzip", "deflate"])
def compressing_server(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """A grpcio server compressing every reply (gzip, then deflate)."""
    with running("grpcio", compression=request.param) as srv:
        yield srv


# ---------------------------------------------------------------------- against a compressing grpcio server


async def test_unary_and_streamed_replies_are_inflated(compressing_server) -> None:  # type: ignore[no-untyped-def]
    payload = b"0123456789abcdef" * 20_000  # compressible, so grpc really compresses it
    async with Channel("127.0.0.1", compressing_server.port) as ch:
        assert await ch.unary(method("Unary"), payload, timeout=20) == b"echo:" + payload
        sizes = [10, 70_000, 3_000_000]  # one frame, several frames, several reads
        for size in sizes:
            async with ch.server_stream(method("Stream"), stream_request(6, size), timeout=30) as messages:
                got = [bytes(m) async for m in messages]
            assert got == [stream_message(i, size) for i in range(6)]


async def test_bidi_replies_are_inflated(compressing_server) -> None:  # type: ignore[no-untyped-def]
    async with (
        Channel("127.0.0.1", compressing_server.port) as ch,
        ch.bidi(method("Bidi"), timeout=20) as call,
    ):
        for i in range(3):
            await call.send(b"x" * 50_000 + bytes([i]))
        await call.end_send()
        got = [bytes(m) async for m in call]
    assert got == [b"re:" + b"x" * 50_000 + bytes([i]) for i in range(3)] + [b"done:3"]


async def test_a_bomb_is_refused_once_it_inflates_past_the_limit(compressing_server) -> None:  # type: ignore[no-untyped-def]
    # 8 MB of one repeated pattern compresses to a few kB: far below the limit on the wire.
    async with Channel("127.0.0.1", compressing_server.port, max_message_size=1 << 20) as ch:
        with pytest.raises(TransportError, match="inflates past the limit of 1048576 bytes"):
            async with ch.server_stream(
                method("Stream"), stream_request(1, 8_000_000), timeout=20
            ) as messages:
                async for _ in messages:
                    pass
        assert await ch.unary(method("Unary"), b"still fine", timeout=20) == b"echo:still fine"


async def test_requests_are_gzipped_when_asked(compressing_server) -> None:  # type: ignore[no-untyped-def]
    payload = bytes(range(256)) * 4000
    async with Channel("127.0.0.1", compressing_server.port, compression="gzip") as ch:
        assert await ch.unary(method("Unary"), payload, timeout=20) == b"echo:" + payload
        async with ch.bidi(method("Bidi"), timeout=20) as call:
            await call.send(payload)
            await call.end_send()
            got = [bytes(m) async for m in call]
    assert got == [b"re:" + payload, b"done:1"]


def test_unknown_request_compression_is_refused() -> None:
    with pytest.raises(ValueError, match="compression must be 'gzip' or None, got 'brotli'"):
        Channel("127.0.0.1", 4410, compression="brotli")


# ---------------------------------------------------------------------- headers and unusual replies


async def test_every_request_says_which_encodings_it_reads_and_how_it_is_compressed() -> None:
    script = Script()
    async with anyio.create_task_group() as tg:
        port = await start(tg, script)
        async with Channel("127.0.0.1", port) as ch:
            assert await ch.unary("/t.S/M", b"plain", timeout=10) == b"echo:plain"
        async with Channel("127.0.0.1", port, compression="gzip") as ch:
            assert await ch.unary("/t.S/M", b"packed" * 100, timeout=10) == b"echo:" + b"packed" * 100
        tg.cancel_scope.cancel()
    plain, packed = script.request_headers
    assert plain[b"grpc-accept-encoding"] == b"gzip, deflate, identity"
    assert b"grpc-encoding" not in plain
    assert packed[b"grpc-encoding"] == b"gzip"


async def test_an_unknown_reply_encoding_is_named() -> None:
    script = Script(compress_request_named=b"zip", reply_encoding=b"snappy")
    async with anyio.create_task_group() as tg:
        port = await start(tg, script)
        async with Channel("127.0.0.1", port) as ch:
            # Uncompressed replies are fine whatever the header says; a compressed one is not.
            assert await ch.unary("/t.S/M", b"plain", timeout=10) == b"echo:plain"
            with pytest.raises(TransportError, match="grpc-encoding 'snappy', which this client cannot read"):
                await ch.unary("/t.S/M", b"zip", timeout=10)
        tg.cancel_scope.cancel()


async def test_a_gzip_reply_from_a_plain_h2_peer() -> None:
    script = Script(compress_request_named=b"zip", reply_encoding=b"gzip")
    async with anyio.create_task_group() as tg:
        port = await start(tg, script)
        async with Channel("127.0.0.1", port) as ch:
            assert await ch.unary("/t.S/M", b"zip", timeout=10) == b"echo:zip"
        tg.cancel_scope.cancel()


# ---------------------------------------------------------------------- the message reader alone


def _split_randomly(data: bytes, rng: random.Random) -> list[bytes]:
    cuts = sorted(rng.sample(range(1, len(data)), min(40, len(data) - 1)))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
@pytest.mark.parametrize("seed", range(5))
def test_reader_inflates_messages_split_anywhere(encoding: str, seed: int) -> None:
    rng = random.Random(seed)
    pack = gzip.compress if encoding == "gzip" else zlib.compress
    messages = [rng.randbytes(rng.randint(0, 3000)) * rng.randint(1, 5) for _ in range(8)]
    stream = b"".join(
        frame_message(pack(m), compressed=True) if i % 2 else frame_message(m) for i, m in enumerate(messages)
    )
    reader = MessageReader(1 << 20)
    reader.set_encoding(encoding.encode())
    got = [bytes(m) for piece in _split_randomly(stream, rng) for m in reader.feed(piece)]
    assert got == messages
    assert not reader.partial


def test_reader_refuses_a_bomb_with_bounded_memory() -> None:
    bomb = gzip.compress(bytes(200 << 20), compresslevel=9)  # 200 MiB of zeros in about 200 kB
    assert len(bomb) < 1 << 20
    reader = MessageReader(4 << 20)
    reader.set_encoding(b"gzip")
    framed = frame_message(bomb, compressed=True)
    tracemalloc.start()
    try:
        with pytest.raises(FramingError, match="inflates past the limit of 4194304 bytes"):
            for start_at in range(0, len(framed), 16_384):
                reader.feed(framed[start_at : start_at + 16_384])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, f"inflating a refused bomb peaked at {peak} bytes"


def test_reader_refuses_compressed_data_without_an_encoding_header() -> None:
    with pytest.raises(FramingError, match="no grpc-encoding header"):
        MessageReader(100).feed(frame_message(gzip.compress(b"abc"), compressed=True))


def test_reader_reports_corrupt_and_truncated_data() -> None:
    reader = MessageReader(100)
    reader.set_encoding(b"gzip")
    with pytest.raises(FramingError, match="corrupt gzip message"):
        reader.feed(PREFIX.pack(1, 5) + b"abcde")
    reader = MessageReader(100)
    reader.set_encoding(b"deflate")
    with pytest.raises(FramingError, match="truncated deflate message"):
        reader.feed(frame_message(zlib.compress(b"hello")[:-3], compressed=True))


def test_identity_encoding_means_no_compression() -> None:
    reader = MessageReader(100)
    reader.set_encoding(b"identity")
    assert [bytes(m) for m in reader.feed(frame_message(b"abc"))] == [b"abc"]
    with pytest.raises(FramingError, match="no grpc-encoding header"):
        reader.feed(frame_message(gzip.compress(b"abc"), compressed=True))
