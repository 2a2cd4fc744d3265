"""Fixtures for the client tests: connected clients on the session's embedded server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from pingthings.timeseries import AsyncClient, Client


@pytest.fixture
async def aclient(server_endpoint: str, anyio_backend: str) -> AsyncIterator[AsyncClient]:
    """An AsyncClient connected on the test's backend (asyncio or trio)."""
    async with await AsyncClient.connect(endpoint=server_endpoint) as client:
        yield client


@pytest.fixture(scope="module")
def conn(server_endpoint: str) -> Iterator[Client]:
    """A synchronous Client shared by the tests of one module."""
    with Client.connect(endpoint=server_endpoint) as client:
        yield client
