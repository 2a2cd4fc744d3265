"""TLS with ALPN h2 against both servers, the CA-bundle helper and its environment variable, TLS failures."""

from __future__ import annotations

import ssl
from pathlib import Path

import anyio
import pytest
import trustme
from grpc_test_servers import (
    ServerThread,
    cancellation_stress,
    method,
    running,
    stream_message,
    stream_request,
)

from pingthings.timeseries.transport import CA_BUNDLE_ENV, Channel, TransportError, client_ssl_context

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module", params=["grpclib", "grpcio"])
def tls_server(request: pytest.FixtureRequest, server_cert: tuple[bytes, bytes]) -> ServerThread:
    with running(request.param, tls=server_cert) as srv:
        yield srv


async def test_tls_calls_with_ca_bundle_path(tls_server: ServerThread, ca_file: Path) -> None:
    context = client_ssl_context(ca_file)
    async with Channel("127.0.0.1", tls_server.port, ssl_context=context) as ch:
        assert await ch.unary(method("Unary"), b"secret") == b"echo:secret"
        async with ch.server_stream(method("Stream"), stream_request(4, 200_000)) as messages:
            assert [bytes(m) async for m in messages] == [stream_message(i, 200_000) for i in range(4)]
        assert ch.scheme == "https"


async def test_ca_bundle_from_environment(
    tls_server: ServerThread, ca_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CA_BUNDLE_ENV, str(ca_file))
    async with Channel("localhost", tls_server.port, ssl_context=client_ssl_context()) as ch:
        assert await ch.unary(method("Unary"), b"env") == b"echo:env"


async def test_untrusted_server_certificate_is_a_transport_error(
    tls_server: ServerThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))
    async with Channel("127.0.0.1", tls_server.port, ssl_context=client_ssl_context(other_ca)) as ch:
        with pytest.raises(TransportError) as info:
            await ch.unary(method("Unary"), b"x")
    text = str(info.value)
    assert f"127.0.0.1:{tls_server.port}" in text and "TLS" in text and "CERTIFICATE_VERIFY_FAILED" in text
    assert not isinstance(info.value, ssl.SSLError)


async def test_tls_client_against_plain_server_is_a_transport_error(
    server: ServerThread, ca_file: Path
) -> None:
    async with Channel(
        "127.0.0.1", server.port, ssl_context=client_ssl_context(ca_file), connect_timeout=5
    ) as ch:
        with pytest.raises(TransportError) as info:
            await ch.unary(method("Unary"), b"x")
    assert f"127.0.0.1:{server.port}" in str(info.value)


async def test_cancellation_stress_over_tls(tls_server: ServerThread, ca_file: Path) -> None:
    # TLS reads gather several records per round; cancellations must not lose any of them.
    context = client_ssl_context(ca_file)
    async with Channel("127.0.0.1", tls_server.port, ssl_context=context, stream_window=256 << 10) as ch:
        await cancellation_stress(ch, seed=11)
        assert ch._conn is not None and not ch._conn.streams


def test_system_defaults_when_nothing_is_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CA_BUNDLE_ENV, raising=False)
    context = client_ssl_context()
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    default_count = len(ssl.create_default_context().get_ca_certs())
    assert len(context.get_ca_certs()) == default_count


def test_missing_bundle_names_its_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(FileNotFoundError, match="ca_bundle argument"):
        client_ssl_context(missing)
    monkeypatch.setenv(CA_BUNDLE_ENV, str(missing))
    with pytest.raises(FileNotFoundError, match=CA_BUNDLE_ENV):
        client_ssl_context()


def test_bundle_without_certificates_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(ValueError, match="no usable certificate"):
        client_ssl_context(junk)


async def test_handshake_timeout_names_endpoint() -> None:
    # A listener that accepts and never answers the TLS handshake.
    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener:
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, _hold_open)
            channel = Channel("127.0.0.1", port, ssl_context=client_ssl_context(), connect_timeout=0.3)
            with pytest.raises(TransportError, match=r"within 0.3s \[127\.0\.0\.1:\d+\]"):
                await channel.unary(method("Unary"), b"")
            tg.cancel_scope.cancel()


async def _hold_open(stream: anyio.abc.SocketStream) -> None:
    async with stream:
        await anyio.sleep_forever()
