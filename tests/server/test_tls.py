"""TLS: the server presents its certificate, speaks h2 over TLS and still checks API keys."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
import trustme

from pingthings.server import Server
from tests.server.rawclient import RawClient


def test_tls_with_api_key(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    cert_path, key_path = tmp_path / "server.pem", tmp_path / "server.key"
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    for extra in cert.cert_chain_pems[1:]:
        with cert_path.open("ab") as handle:
            handle.write(extra.bytes())
    cert.private_key_pem.write_to_path(str(key_path))
    credentials = grpc.ssl_channel_credentials(root_certificates=ca.cert_pem.bytes())
    with Server(tmp_path / "data", api_keys={"tls-key": False}, tls=(cert_path, key_path)) as srv:
        with RawClient(srv.endpoint, "tls-key", credentials=credentials) as client:
            assert client.info().major_version == 5
        with (
            RawClient(srv.endpoint, "wrong", credentials=credentials) as client,
            pytest.raises(grpc.RpcError) as info,
        ):
            client.info()
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with RawClient(srv.endpoint, "tls-key") as plaintext, pytest.raises(grpc.RpcError) as info:
            plaintext.info()
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
