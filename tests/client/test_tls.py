"""TLS through the client: CA bundle by argument, environment and endpoint scheme; clear failures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import pingthings.timeseries as pt
from pingthings.server import Server
from pingthings.timeseries import AsyncClient
from pingthings.timeseries.exceptions import ConnectionError, PermissionDeniedError

trustme = pytest.importorskip("trustme")

KEY = "tls-test-key"


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A TLS server requiring KEY; yields its endpoint and the CA bundle that trusts it."""
    root = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    cert_path, key_path, ca_path = root / "server.pem", root / "server.key", root / "ca.pem"
    cert_path.write_bytes(b"".join(pem.bytes() for pem in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(key_path))
    ca.cert_pem.write_to_path(str(ca_path))
    with Server(root / "data", api_keys={KEY: False}, tls=(cert_path, key_path)) as server:
        yield server.endpoint, ca_path


def test_tls_with_ca_bundle_argument(tls_server: tuple[str, Path]) -> None:
    endpoint, ca = tls_server
    with pt.connect(endpoint=endpoint, apikey=KEY, tls=True, ca_bundle=str(ca)) as conn:
        assert conn.info()["major_version"] == 5


def test_tls_from_scheme_and_environment(
    tls_server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint, ca = tls_server
    monkeypatch.setenv("BTRDB_CA_BUNDLE", str(ca))
    with pt.connect(endpoint=f"https://{endpoint}", apikey=KEY) as conn:
        assert conn.info()["major_version"] == 5


def test_tls_failures_are_clear(tls_server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint, ca = tls_server
    monkeypatch.delenv("BTRDB_CA_BUNDLE", raising=False)
    with pytest.raises(ConnectionError) as info:  # our CA is not in the system store
        pt.connect(endpoint=endpoint, apikey=KEY, tls=True)
    assert endpoint in str(info.value)
    with pytest.raises(ConnectionError) as info:  # plaintext against a TLS server
        pt.connect(endpoint=endpoint, apikey=KEY, tls=False)
    assert endpoint in str(info.value)
    with pytest.raises(PermissionDeniedError):
        pt.connect(endpoint=endpoint, apikey="wrong", tls=True, ca_bundle=str(ca))


@pytest.mark.anyio
async def test_async_client_over_tls(tls_server: tuple[str, Path], anyio_backend: str) -> None:
    endpoint, ca = tls_server
    async with await AsyncClient.connect(
        endpoint=endpoint, apikey=KEY, tls=True, ca_bundle=str(ca)
    ) as client:
        assert (await client.info())["major_version"] == 5
        assert await client.list_collections("no-such-prefix/") == []
