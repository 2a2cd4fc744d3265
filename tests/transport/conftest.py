"""Fixtures for the transport tests: grpclib and grpcio test servers on 127.0.0.1, and a throwaway CA."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from grpc_test_servers import SERVER_KINDS_FOR_TESTS, ServerThread, running


@pytest.fixture(params=SERVER_KINDS_FOR_TESTS)
def server_kind(request: pytest.FixtureRequest) -> str:
    """Each kind of test server, for tests that start and stop servers themselves."""
    return str(request.param)


@pytest.fixture(scope="module", params=SERVER_KINDS_FOR_TESTS)
def server(request: pytest.FixtureRequest) -> Iterator[ServerThread]:
    """A plain-text test server of each kind, shared by the tests of one module."""
    with running(request.param) as srv:
        yield srv


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    """A throwaway certificate authority."""
    return trustme.CA()


@pytest.fixture(scope="module")
def server_cert(ca: trustme.CA) -> tuple[bytes, bytes]:
    """(certificate chain PEM, private key PEM) for 127.0.0.1 and localhost, signed by ``ca``."""
    cert = ca.issue_cert("127.0.0.1", "localhost")
    chain = b"".join(blob.bytes() for blob in cert.cert_chain_pems)
    return chain, cert.private_key_pem.bytes()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> Path:
    """The throwaway CA's certificate as a PEM file."""
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path
