"""Every fast path built on another library's internals is active at the versions installed here.

CI runs this file twice: with the newest allowed versions (``.ci/run``'s main venv) and with every floor
(``nox -s minimums``). Each fast path reports through :func:`pingthings.fastpaths.report_fallback` when
it cannot work, so real traffic that passes through all of them and records no fallback shows them
active; probes on fresh objects of the real libraries show each one separately.
"""

from __future__ import annotations

import logging
import ssl
import types
import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import anyio.streams.tls
import numpy as np
import pytest
import trustme

import pingthings.timeseries as pt
from pingthings._proto import v5api
from pingthings.fastpaths import FAST_PATHS, fallbacks_taken, forget_fallbacks, report_fallback
from pingthings.server import Server
from pingthings.timeseries._flat_messages import flat_encoder
from pingthings.timeseries.transport import backend as backend_module
from pingthings.timeseries.transport.connection import READ_SIZE
from pingthings.timeseries.transport.direct_write import direct_writer
from pingthings.timeseries.transport.read_size import LARGE_READ, read_size_for
from pingthings.timeseries.transport.steady_read import steady_reader
from pingthings.timeseries.transport.tls_buffer import tls_read_buffer

POINTS = 400_000  # a raw read of several MiB: many TLS records, direct sends of large replies


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A CA file and a server certificate and key for 127.0.0.1."""
    folder = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    ca_path, cert_path, key_path = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    ca.cert_pem.write_to_path(str(ca_path))
    cert_path.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(key_path))
    return ca_path, cert_path, key_path


@pytest.fixture(scope="module")
def tls_server(
    tmp_path_factory: pytest.TempPathFactory, tls_files: tuple[Path, Path, Path]
) -> Iterator[Server]:
    _, cert_path, key_path = tls_files
    forget_fallbacks()  # the server's start is one of the fast paths
    with Server(tmp_path_factory.mktemp("fastpaths"), listen="127.0.0.1:0", tls=(cert_path, key_path)) as srv:
        yield srv


@pytest.mark.anyio
async def test_real_traffic_through_every_fast_path_takes_no_fallback(
    tls_server: Server, tls_files: tuple[Path, Path, Path]
) -> None:
    # Every client connection writes through the direct writer and every TLS connection reads
    # through the TLS buffer. Any of them that cannot work reports a fallback.
    times = np.arange(POINTS, dtype=np.int64) * 1_000 + 10**15
    values = np.sin(np.arange(POINTS) / 100.0)
    client = await pt.AsyncClient.connect(endpoint=tls_server.endpoint, tls=True, ca_bundle=str(tls_files[0]))
    try:
        stream = await client.create(uuid.uuid4(), f"fastpaths/{uuid.uuid4().hex[:8]}", {"name": "s"})
        await stream.insert((times, values))
        table = await stream.raw_values(times[0], times[-1] + 1)
    finally:
        await client.aclose()
    assert np.array_equal(table.column("value").to_numpy(), values)
    assert fallbacks_taken() == frozenset()


def test_generated_request_classes_have_the_field_metadata() -> None:
    forget_fallbacks()
    assert flat_encoder(v5api.AlignedWindowsParams) is not None
    assert flat_encoder(v5api.ArrowMultiValuesParams) is None  # repeated fields: not flat, no fallback
    assert fallbacks_taken() == frozenset()


@pytest.mark.anyio
async def test_anyio_tls_stream_has_the_read_buffer(
    tls_server: Server, tls_files: tuple[Path, Path, Path]
) -> None:
    context = ssl.create_default_context(cafile=str(tls_files[0]))
    context.set_alpn_protocols(["h2"])
    host, port = tls_server.endpoint.rsplit(":", 1)
    stream = await anyio.connect_tcp(host, int(port), ssl_context=context)
    try:
        assert isinstance(stream, anyio.streams.tls.TLSStream)
        assert isinstance(tls_read_buffer(stream), ssl.MemoryBIO)
    finally:
        await anyio.aclose_forcefully(stream)  # the server's SETTINGS may be unread: no TLS goodbye


def test_every_fast_path_has_a_check_here() -> None:
    checked = {"tls-drain", "direct-write", "large-reads", "backend-cache", "steady-read", "flat-encode"}
    assert set(FAST_PATHS) == checked


def test_a_fallback_is_logged_once_at_debug_level(caplog: pytest.LogCaptureFixture) -> None:
    forget_fallbacks()
    caplog.set_level(logging.DEBUG, logger="pingthings.fastpaths")
    stale = types.SimpleNamespace()  # neither a TLS stream nor an anyio socket stream
    assert tls_read_buffer(stale) is None  # type: ignore[arg-type]
    assert tls_read_buffer(stale) is None  # type: ignore[arg-type]
    assert direct_writer(stale) is None  # type: ignore[arg-type]
    report_fallback("tls-drain", "again")
    records = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "pingthings.fastpaths"]
    assert [level for level, _ in records] == [logging.DEBUG, logging.DEBUG]
    assert "'tls-drain'" in records[0][1] and "'direct-write'" in records[1][1]
    assert fallbacks_taken() == {"tls-drain", "direct-write"}
    forget_fallbacks()


@pytest.mark.anyio
async def test_the_running_backend_is_anyios_own_class() -> None:
    forget_fallbacks()
    backend = backend_module.current_backend()
    assert backend is not backend_module.PublicBackend
    assert backend.current_time() == pytest.approx(anyio.current_time(), abs=0.5)
    assert "backend-cache" not in fallbacks_taken()


@pytest.mark.anyio
async def test_backend_fallback_uses_anyios_public_functions(monkeypatch: pytest.MonkeyPatch) -> None:
    forget_fallbacks()
    monkeypatch.setattr(backend_module, "_private_lookup", None)
    backend = backend_module.current_backend()
    assert backend is backend_module.PublicBackend
    assert fallbacks_taken() == {"backend-cache"}
    with backend.create_cancel_scope(deadline=backend.current_time() + 0.01) as scope:
        await anyio.sleep(5)
    assert scope.cancelled_caught
    with backend.create_cancel_scope() as scope:
        scope.cancel()
        with pytest.raises(anyio.get_cancelled_exc_class()):
            await backend.checkpoint_if_cancelled()
    forget_fallbacks()


def test_tls_buffer_fallback_when_anyio_hides_it() -> None:
    forget_fallbacks()
    assert tls_read_buffer(types.SimpleNamespace()) is None  # type: ignore[arg-type]
    assert fallbacks_taken() == {"tls-drain"}
    forget_fallbacks()


@pytest.mark.anyio
async def test_plain_tcp_streams_get_a_direct_writer() -> None:
    received = bytearray()
    arrived = anyio.Event()
    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener:
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        async with anyio.create_task_group() as tg:

            async def serve(peer: anyio.abc.SocketStream) -> None:
                async with peer:
                    received.extend(await peer.receive())
                    arrived.set()

            tg.start_soon(listener.serve, serve)
            async with await anyio.connect_tcp("127.0.0.1", port) as stream:
                write = direct_writer(stream)
                assert write is not None
                assert write(b"direct") == 6
                with anyio.fail_after(10):
                    await arrived.wait()
            tg.cancel_scope.cancel()
    assert bytes(received) == b"direct"
    assert "direct-write" not in fallbacks_taken()


def test_large_reads_fallback_when_anyio_hides_the_transport() -> None:
    forget_fallbacks()
    assert read_size_for(types.SimpleNamespace(), READ_SIZE) is None  # type: ignore[arg-type]
    assert fallbacks_taken() == {"large-reads"}
    forget_fallbacks()


@pytest.mark.anyio
async def test_plain_tcp_reads_widen_while_they_come_back_full(anyio_backend_name: str) -> None:
    # asyncio's transport reads 256 KiB per recv unless widened; trio reads what receive() asks.
    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener:
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            size = read_size_for(stream, READ_SIZE)
            assert size is not None
            small = size.current
            native = stream._transport.max_size if anyio_backend_name == "asyncio" else None  # type: ignore[attr-defined]
            size.after_read(small)  # a full read: more is waiting
            assert size.current == LARGE_READ
            if native is not None:
                assert stream._transport.max_size == LARGE_READ  # type: ignore[attr-defined]
            else:
                assert size.ask == LARGE_READ
            size.after_read(100)  # a short read: back to ordinary reads
            assert size.current == small
            if native is not None:
                assert stream._transport.max_size == native  # type: ignore[attr-defined]
    assert "large-reads" not in fallbacks_taken()


@pytest.mark.anyio
async def test_calls_over_plain_tcp_take_no_fallback(server_endpoint: str) -> None:
    # Plain TCP connections on asyncio read through the steady reader (trio reads the socket itself).
    forget_fallbacks()
    async with await pt.AsyncClient.connect(server_endpoint) as client:
        for _ in range(3):
            assert (await client.info())["major_version"] == 5
    assert fallbacks_taken() == frozenset()


def test_steady_read_fallback_when_anyio_hides_the_read_queue() -> None:
    forget_fallbacks()
    assert steady_reader(_AsyncioLooking(), None) is None  # type: ignore[arg-type]
    assert fallbacks_taken() == {"steady-read"}
    forget_fallbacks()


class _AsyncioLooking:
    """Claims to be anyio's asyncio stream (by module) but has none of its internals."""


_AsyncioLooking.__module__ = "anyio._backends._asyncio"
