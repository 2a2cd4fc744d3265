"""Fixtures for the stream tests: clients on the session's embedded server, on both RPC paths.

``client`` is an :class:`AsyncClient` parametrized over the three data paths: ``blocks`` (raw
reads through the platform's RawBlocks, the default against our server), ``arrow`` (the Arrow
RPCs, which our server advertises) and ``protobuf`` (the classic RPCs, forced by clearing the
client's Arrow flag); the last two read raw values without RawBlocks. ``conn`` is the
synchronous :class:`Client` likewise.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from pingthings.timeseries import _raw_blocks
from pingthings.timeseries.async_client import AsyncClient
from pingthings.timeseries.client import Client


def _force_path(client: AsyncClient, path: str) -> None:
    if path != "blocks":
        _raw_blocks.disable(client)  # raw reads through (Arrow)RawValues, as against a stock server
    if path == "protobuf":
        client._arrow_enabled = False  # the classic RPCs, as against a server without Arrow
    else:
        assert client.arrow_enabled, "the embedded server should advertise the Arrow RPCs"


@pytest.fixture(params=["blocks", "arrow", "protobuf"])
def data_path(request: pytest.FixtureRequest) -> str:
    """Which family of data RPCs the client uses."""
    return str(request.param)


@pytest.fixture
async def client(server_endpoint: str, data_path: str) -> AsyncIterator[AsyncClient]:
    """An async client on the embedded server, using the ``data_path`` RPCs."""
    c = await AsyncClient.connect(endpoint=server_endpoint)
    _force_path(c, data_path)
    try:
        yield c
    finally:
        await c.aclose()


@pytest.fixture
def conn(server_endpoint: str, data_path: str) -> Iterator[Client]:
    """A synchronous client on the embedded server, using the ``data_path`` RPCs."""
    c = Client.connect(endpoint=server_endpoint)
    _force_path(c.get_async_client(), data_path)
    try:
        yield c
    finally:
        c.close()
