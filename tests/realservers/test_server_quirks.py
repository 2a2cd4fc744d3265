"""What else real servers do: 405 from a node that does not own a stream (and proxies listed in Info),
annotation bytes that are not text, collection listings longer than one v4 page, request compression
settings."""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml

import pingthings.timeseries._collections as collections_module
from pingthings.timeseries import AsyncClient, Client
from pingthings.timeseries.config import resolve_settings
from pingthings.timeseries.exceptions import InvalidArgumentError, MetadataDecodeError, WrongEndpointError
from tests.realservers.btrdb_double import Behaviour, RunningDouble, Store

pytestmark = pytest.mark.anyio

T0 = 1_700_000_000_000_000_000


@pytest.fixture
def cluster() -> Iterator[tuple[RunningDouble, RunningDouble, uuidlib.UUID]]:
    """A node that does not own one stream and a proxy that serves it, sharing their streams; the node's
    Info lists the proxy."""
    store = Store()
    owned_elsewhere = uuidlib.uuid4()
    proxy = RunningDouble(store, Behaviour())
    node = RunningDouble(store, Behaviour(foreign={owned_elsewhere.bytes}, proxy_endpoints=[proxy.endpoint]))
    try:
        yield node, proxy, owned_elsewhere
    finally:
        node.stop()
        proxy.stop()


async def test_calls_the_node_refuses_with_405_go_through_the_proxy(cluster) -> None:  # type: ignore[no-untyped-def]
    node, proxy, stream_id = cluster
    times = T0 + np.arange(1000, dtype=np.int64)
    async with await AsyncClient.connect(endpoint=node.endpoint) as client:
        assert client.proxy_endpoints == [proxy.endpoint]
        stream = await client.create(stream_id, "far/away", {"name": "x"}, {"site": "B"})
        await stream.insert((times, np.ones(1000)))  # unary: retried through the proxy
        table = await stream.raw_values(T0, T0 + 1000)  # streamed: retried through the proxy
        assert table.num_rows == 1000
        await stream.refresh_metadata()
        assert stream.annotations() == {"site": "B"}
        local = await client.create(uuidlib.uuid4(), "near", {"name": "y"})
        await local.insert((times, np.ones(1000)))
    assert [r.uuid for r in node.inserts()] == [stream_id.bytes, stream_id.bytes, local.uuid.bytes]


async def test_405_without_a_proxy_names_the_endpoint(cluster) -> None:  # type: ignore[no-untyped-def]
    node, _proxy, stream_id = cluster
    alone = RunningDouble(node.store, Behaviour(foreign={stream_id.bytes}))
    try:
        async with await AsyncClient.connect(endpoint=alone.endpoint) as client:
            await client.create(stream_id, "far/away", {"name": "x"})
            stream = client.stream_handle(stream_id)
            with pytest.raises(WrongEndpointError, match=f"{alone.endpoint}.*not the owner") as unary:
                await stream.insert((np.array([T0]), np.array([1.0])))
            with pytest.raises(WrongEndpointError, match=f"{alone.endpoint}.*not the owner") as streamed:
                await stream.raw_values(T0, T0 + 10)
    finally:
        alone.stop()
    for info in (unary, streamed):
        assert info.value.code == 405
        assert "lists no proxy endpoint" in str(info.value)


async def test_annotation_bytes_that_are_not_text_name_the_stream_and_key() -> None:
    double = RunningDouble(Store(), Behaviour())
    try:
        async with await AsyncClient.connect(endpoint=double.endpoint) as client:
            stream = await client.create(uuidlib.uuid4(), "c", {"name": "n"}, {"ok": "fine"})
            with double.store.lock:
                double.store.streams[stream.uuid.bytes].annotations["blob"] = b"\xff\xfe\x00"
            with pytest.raises(MetadataDecodeError, match=f"annotation 'blob' of stream {stream.uuid}"):
                await stream.refresh_metadata()
            with pytest.raises(MetadataDecodeError, match="'blob'"):
                await client.streams_in_collection("c")
    finally:
        double.stop()


@pytest.mark.parametrize("where", ["v4", "v5"])
async def test_list_collections_pages_until_done(
    where: str, server_endpoint: str, unique_collection: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(collections_module, "PAGE_SIZE", 2)  # five names: three v4 pages
    double = RunningDouble(Store(), Behaviour())
    endpoint = double.endpoint if where == "v4" else server_endpoint
    names = [f"{unique_collection}/{i}" for i in range(5)]
    try:
        async with await AsyncClient.connect(endpoint=endpoint) as client:
            for name in names:
                await client.create(uuidlib.uuid4(), name, {"name": "n"})
            assert await client.list_collections(unique_collection) == names
    finally:
        double.stop()


def test_request_compression_from_argument_profile_and_environment(tmp_path: Path) -> None:
    home = tmp_path
    (home / ".predictivegrid").mkdir()
    (home / ".predictivegrid" / "credentials.yaml").write_text(
        yaml.safe_dump({"slow": {"btrdb": {"endpoints": "h:4410", "compression": "gzip"}}})
    )
    env = {"BTRDB_ENDPOINTS": "h:4410"}
    assert resolve_settings(environ=env, home=home).compression is None
    assert (
        resolve_settings(environ={**env, "PINGTHINGS_COMPRESSION": "gzip"}, home=home).compression == "gzip"
    )
    assert resolve_settings("slow", environ=env, home=home).compression == "gzip"
    assert resolve_settings("slow", environ=env, home=home, compression="none").compression is None
    with pytest.raises(InvalidArgumentError, match="compression from \\$PINGTHINGS_COMPRESSION"):
        resolve_settings(environ={**env, "PINGTHINGS_COMPRESSION": "zstd"}, home=home)


def test_the_sync_client_with_gzip_requests_against_a_v4_server() -> None:
    double = RunningDouble(Store(), Behaviour())
    times = T0 + np.arange(30_000, dtype=np.int64)
    try:
        with Client.connect(endpoint=double.endpoint, compression="gzip") as client:
            stream = client.create(uuidlib.uuid4(), "sync", {"name": "n"})
            stream.insert((times, np.sin(times.astype(np.float64))))
            assert stream.raw_values(T0, T0 + 30_000).num_rows == 30_000
    finally:
        double.stop()
    assert [r.points for r in double.inserts()] == [25_000, 5_000]
