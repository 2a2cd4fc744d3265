"""The embedded server started with ``compression="gzip"`` (``pingthings serve --compression gzip``):
replies are gzip-compressed for clients that accept gzip, our client and the official btrdb client read
them, and compressed requests are read (with a bound) whatever the setting.

Bytes on the wire are counted by a relay between client and server (:mod:`wire_relay`).
"""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from pingthings._proto import v5api
from pingthings.server import Server
from pingthings.server.config import ConfigError, ServerConfig
from pingthings.server.service.compression import encoding_of
from pingthings.timeseries import AsyncClient
from pingthings.timeseries.transport import Channel
from tests.cli.test_serve import _stop, serving
from tests.realservers.wire_relay import WireRelay
from tests.server.rawclient import stat_of

btrdb = pytest.importorskip("btrdb")

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::DeprecationWarning"),
]

T0 = 1_700_000_000_000_000_000
STEP = 1_000_000
N = 200_000


@pytest.fixture(scope="module")
def gzip_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """An embedded server that compresses replies (module-wide)."""
    with Server(tmp_path_factory.mktemp("gzip-server"), listen="127.0.0.1:0", compression="gzip") as srv:
        yield srv


def _signal() -> tuple[np.ndarray, np.ndarray]:
    """Times and a measured-looking signal: 60 Hz with two decimals (compressible as real data is)."""
    times = T0 + np.arange(N, dtype=np.int64) * STEP
    return times, np.round(120 * np.sin(np.arange(N) * 2 * np.pi / 16.6), 2)


async def _write_and_read(endpoint: str, collection: str) -> tuple[np.ndarray, np.ndarray, int]:
    times, values = _signal()
    async with await AsyncClient.connect(endpoint=endpoint) as client:
        stream = await client.create(uuidlib.uuid4(), collection, {"name": "v"})
        await stream.insert((times, values))
        table = await stream.raw_values(T0, T0 + N * STEP)
        stats = await stream.aligned_windows(T0, T0 + N * STEP, 30, schema=None)
    np.testing.assert_array_equal(table.column("time").cast("int64").to_numpy(), times)
    np.testing.assert_array_equal(table.column("value").to_numpy(), values)
    return times, values, int(stats.column("count").to_numpy().sum())


async def test_our_client_reads_compressed_replies_with_fewer_bytes(
    gzip_server: Server, server_endpoint: str, unique_collection: str
) -> None:
    received = {}
    for name, endpoint in (("gzip", gzip_server.endpoint), ("plain", server_endpoint)):
        with WireRelay(endpoint) as relay:
            *_, counted = await _write_and_read(relay.endpoint, f"{unique_collection}/{name}")
            received[name] = relay.to_client
        assert counted > 0
    # The raw read dominates: 16 bytes a point uncompressed; gzip takes a good part of that away.
    assert received["plain"] > 16 * N
    assert received["gzip"] < 0.8 * received["plain"], received


async def test_the_official_client_reads_compressed_replies(
    gzip_server: Server, unique_collection: str
) -> None:
    times, values = _signal()
    with WireRelay(gzip_server.endpoint) as relay:
        db = btrdb.connect(relay.endpoint)  # btrdb has no close(); its channel dies with the relay
        stream = db.create(uuidlib.uuid4(), unique_collection, tags={"name": "v"})
        stream.insert(list(zip(times.tolist(), values.tolist(), strict=True)))
        relay.reset()
        points = stream.values(T0, T0 + N * STEP)
        windows = stream.aligned_windows(T0, T0 + N * STEP, 30)
        read_bytes = relay.to_client
    assert [p.time for p, _ in points] == times.tolist()
    assert [p.value for p, _ in points] == values.tolist()
    assert sum(w.count for w, _ in windows) > 0
    assert read_bytes < 0.8 * 16 * N  # compressed on the wire


@pytest.mark.parametrize("which", ["gzip", "plain"])
async def test_gzip_requests_are_read_by_the_server(
    which: str, gzip_server: Server, server_endpoint: str, unique_collection: str
) -> None:
    endpoint = gzip_server.endpoint if which == "gzip" else server_endpoint
    times, values = _signal()
    with WireRelay(endpoint) as relay:
        async with await AsyncClient.connect(endpoint=relay.endpoint, compression="gzip") as client:
            stream = await client.create(uuidlib.uuid4(), unique_collection, {"name": "v"})
            relay.reset()
            await stream.insert((times, values))
            sent = relay.to_server
            table = await stream.raw_values(T0, T0 + N * STEP)
    np.testing.assert_array_equal(table.column("value").to_numpy(), values)
    assert sent < 0.8 * 16 * N


async def test_a_compressed_request_bomb_is_refused(gzip_server: Server) -> None:
    bomb = bytes(80 << 20)  # 80 MiB of zeros: about 80 kB gzipped, above the 64 MiB inflated limit
    async with Channel(*_host_port(gzip_server.endpoint), compression="gzip") as ch:
        reply = await ch.unary("/v5api.BTrDB/Insert", bomb, timeout=60)
        stat = stat_of(reply)
        assert stat is not None and stat.code == 421
        assert "inflates past the limit" in stat.msg
        info = v5api.InfoResponse.parse(await ch.unary("/v5api.BTrDB/Info", b"", timeout=10))
        assert info.major_version == 5


def _host_port(endpoint: str) -> tuple[str, int]:
    host, _, port = endpoint.rpartition(":")
    return host, int(port)


def test_only_clients_that_accept_gzip_get_it() -> None:
    assert encoding_of([(b"grpc-accept-encoding", b"identity,deflate,gzip")], True).compress_replies
    assert not encoding_of([(b"grpc-accept-encoding", b"identity, deflate")], True).compress_replies
    assert not encoding_of([], True).compress_replies
    assert not encoding_of([(b"grpc-accept-encoding", b"gzip")], False).compress_replies
    assert encoding_of([(b"grpc-encoding", b"gzip")], False).request_encoding == "gzip"
    assert encoding_of([(b"grpc-encoding", b"identity")], False).request_encoding is None


def test_the_setting_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="compression must be 'gzip' or None"):
        ServerConfig(data_dir=tmp_path, compression="brotli")


def test_serve_with_compression_gzip(tmp_path: Path) -> None:
    import pingthings.timeseries as pt

    times, values = _signal()
    with (
        serving(tmp_path / "data", "--compression", "gzip") as (proc, endpoint),
        WireRelay(endpoint) as relay,
    ):
        with pt.connect(endpoint=relay.endpoint) as conn:
            stream = conn.create(uuidlib.uuid4(), "serve_gzip", tags={"name": "v"})
            stream.insert((times, values))
            relay.reset()
            table = stream.raw_values(T0, T0 + N * STEP)
        np.testing.assert_array_equal(table.column("value").to_numpy(), values)
        assert relay.to_client < 0.8 * 16 * N
        assert _stop(proc) == 0
