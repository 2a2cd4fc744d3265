"""``connect(lazy=True)``: a client made while the server is down works once the server is back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anyio
import numpy as np
import pytest

import pingthings.timeseries as pt
from pingthings.timeseries import AsyncClient
from pingthings.timeseries.exceptions import ConnectionError, PermissionDeniedError
from tests.web.restartable import RestartableServer

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def down_server(tmp_path: Path) -> Iterator[RestartableServer]:
    """A server that ran once (so its port is known) and is now stopped."""
    server = RestartableServer(tmp_path / "data")
    server.start()
    server.stop()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.anyio
async def test_plain_connect_still_fails_at_once_when_the_server_is_down(
    down_server: RestartableServer,
) -> None:
    with pytest.raises(ConnectionError, match="could not connect"):
        await AsyncClient.connect(endpoint=down_server.endpoint, connect_timeout=2)


@pytest.mark.anyio
async def test_lazy_client_fails_calls_while_down_then_recovers(down_server: RestartableServer) -> None:
    client = await AsyncClient.connect(endpoint=down_server.endpoint, connect_timeout=2, lazy=True)
    async with client:
        assert not client.arrow_enabled  # nothing learned yet
        with pytest.raises(ConnectionError, match=down_server.endpoint):
            await client.list_collections()
        with pytest.raises(ConnectionError):  # and again: the failure is not cached forever
            await client.list_collections()

        await anyio.to_thread.run_sync(down_server.start)
        assert await client.list_collections() == []
        # the first connection asked Info: the Arrow RPCs of our server are now used
        assert client.arrow_enabled

        stream = await client.create(pt_uuid(), "lazy/recover", {"name": "a"})
        await stream.insert((np.arange(1, 11, dtype=np.int64), np.arange(10, dtype=np.float64)))
        assert (await stream.raw_values(0, 100)).num_rows == 10

        # stopped from a worker thread: the server's graceful stop waits for this loop's client
        await anyio.to_thread.run_sync(down_server.stop)
        with pytest.raises(ConnectionError):
            await stream.count()
        await anyio.to_thread.run_sync(down_server.start)
        assert await stream.count() == 10


@pytest.mark.anyio
async def test_lazy_client_reports_a_wrong_key_on_the_first_call(tmp_path: Path) -> None:
    server = RestartableServer(tmp_path / "data", api_key="right-key-0123456789")
    server.start()
    try:
        client = await AsyncClient.connect(endpoint=server.endpoint, apikey="wrong-key", lazy=True)
        async with client:
            with pytest.raises(PermissionDeniedError):
                await client.list_collections()
    finally:
        server.stop()


def test_sync_lazy_client_recovers(down_server: RestartableServer) -> None:
    with pt.connect(endpoint=down_server.endpoint, connect_timeout=2, lazy=True) as conn:
        with pytest.raises(ConnectionError):
            conn.info()
        down_server.start()
        assert conn.info()["major_version"] == 5


def pt_uuid() -> str:
    import uuid

    return str(uuid.uuid4())
