"""The official client over TLS: btrdb switches to TLS on port 4411 and sends its key as a bearer token."""

from __future__ import annotations

import socket
import uuid as uuidlib
from pathlib import Path

import pytest
import trustme

from pingthings.server import Server

btrdb = pytest.importorskip("btrdb")

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::DeprecationWarning")


def port_4411_free() -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio's server does
        try:
            probe.bind(("127.0.0.1", 4411))
        except OSError:
            return False
    return True


def test_official_client_over_tls_on_4411(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not port_4411_free():
        pytest.skip("127.0.0.1:4411 is in use; the official client only speaks TLS on port 4411")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_path, key_path, ca_path = tmp_path / "server.pem", tmp_path / "server.key", tmp_path / "ca.pem"
    cert_path.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(key_path))
    ca.cert_pem.write_to_path(str(ca_path))
    monkeypatch.setenv("BTRDB_CA_BUNDLE", str(ca_path))
    with Server(
        tmp_path / "data", listen="127.0.0.1:4411", api_keys={"tls-secret": False}, tls=(cert_path, key_path)
    ) as srv:
        db = btrdb.connect(srv.endpoint, apikey="tls-secret")
        assert db.info()["majorVersion"] == 5
        stream = db.create(uuidlib.uuid4(), "tls/test", tags={"name": "t"})
        stream.insert([(1, 1.0), (2, 2.0)])
        assert [p.value for p, _ in stream.values(0, 10)] == [1.0, 2.0]
        with pytest.raises(btrdb.exceptions.BTrDBError, match="invalid api key"):
            btrdb.connect(srv.endpoint, apikey="wrong")
