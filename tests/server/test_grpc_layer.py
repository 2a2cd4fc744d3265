"""The gRPC layer under the services, frame by frame: HTTP/2 rules, call lifecycle, flow control.

A :class:`GrpcServer` serves a small method table on 127.0.0.1 and a raw HTTP/2 peer (built on the
sans-IO core) sends exactly the frames each test needs. The server is asyncio-only, so these tests
run on asyncio.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trustme

from pingthings.server.grpc import protocol as protocol_module
from pingthings.server.grpc.call import Call
from pingthings.server.grpc.dispatch import Handler, Method, MethodTable
from pingthings.server.grpc.eager import first_step_alone
from pingthings.server.grpc.flow import MAX_CONCURRENT_STREAMS, STREAM_WINDOW
from pingthings.server.grpc.protocol import GrpcProtocol
from pingthings.server.grpc.send_queue import unacknowledged_bytes
from pingthings.server.grpc.shutdown import GrpcServer
from pingthings.server.grpc.status import GrpcError, GrpcStatus
from pingthings.server.listener import bind_listener, bound_port
from pingthings.wire.http2 import frames
from pingthings.wire.http2.frames import ErrorCode, FrameReader
from pingthings.wire.http2.hpack import HeaderDecoder, HeaderEncoder
from tests.server.h2raw import WAIT, RawPeer

MAX_MESSAGE = 1 << 20


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Policy:
    """Admits calls unless a call sends ``x-refuse``; counts running calls."""

    def __init__(self) -> None:
        self.running = 0

    def admit(self, call: Call) -> None:
        if any(name == b"x-refuse" for name, _ in call.headers):
            raise GrpcError(GrpcStatus.PERMISSION_DENIED, "refused: ünïcode % sign")

    def started(self, call: Call) -> None:
        self.running += 1

    def finished(self, call: Call) -> None:
        self.running -= 1

    async def run(self, call: Call, handler: Handler) -> None:
        await handler(call)


class Service:
    """Echo (unary), Hang (unary, never answers), Big (one large streamed reply), Boom (raises);
    Echo, Hang and Boom also as eager methods (``/t.T/Eager...``)."""

    def __init__(self) -> None:
        self.hanging = asyncio.Event()
        self.cancelled: list[str] = []
        self.alone: list[bool] = []
        self.big_sent = asyncio.Event()

    async def alone_echo(self, call: Call) -> None:
        self.alone.append(first_step_alone())
        await self.echo(call)

    async def echo(self, call: Call) -> None:
        request = await call.recv_message()
        assert call.send_unary(request)

    async def hang(self, call: Call) -> None:
        await call.recv_message()
        self.hanging.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled.append(call.path)
            raise

    async def big(self, call: Call) -> None:
        size = int(await call.recv_message() or b"0")
        await call.send_message(bytes(range(256)) * (size // 256))
        self.big_sent.set()

    async def boom(self, call: Call) -> None:
        raise RuntimeError("a bug")

    def grpc_methods(self) -> dict[str, Method]:
        return {
            "/t.T/Echo": Method(self.echo, unary=True),
            "/t.T/Hang": Method(self.hang, unary=True),
            "/t.T/Big": Method(self.big, unary=False),
            "/t.T/Boom": Method(self.boom, unary=True),
            # the same handlers started eagerly (grpc/eager.py): no task unless they wait
            "/t.T/EagerEcho": Method(self.echo, unary=True, eager=True),
            "/t.T/EagerHang": Method(self.hang, unary=True, eager=True),
            "/t.T/EagerBoom": Method(self.boom, unary=True, eager=True),
            "/t.T/EagerAlone": Method(self.alone_echo, unary=True, eager=True),
            "/t.T/Alone": Method(self.alone_echo, unary=True),
        }


#: Every call test runs with the handlers started in a task and started eagerly.
_EAGER_OR_NOT = pytest.mark.parametrize("kind", ["", "Eager"])


class Served:
    def __init__(self, server: GrpcServer, port: int, service: Service, policy: Policy) -> None:
        self.server, self.port, self.service, self.policy = server, port, service, policy


@contextlib.asynccontextmanager
async def _serving(tls: ssl.SSLContext | None) -> AsyncIterator[Served]:
    service, policy = Service(), Policy()
    server = GrpcServer(MethodTable([service]), policy, max_message_bytes=MAX_MESSAGE)
    sock = bind_listener("127.0.0.1", 0)
    await server.start(sock, tls)
    try:
        yield Served(server, bound_port(sock), service, policy)
    finally:
        server.close()
        await server.wait_closed(5)


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    async with _serving(None) as served:
        yield served


def _tls_pair() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a certificate for "localhost" and a client context that trusts it."""
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_ctx)
    server_ctx.set_alpn_protocols(["h2"])
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    client_ctx.set_alpn_protocols(["h2"])
    return server_ctx, client_ctx


async def _peer(
    served: Served,
    settings: dict[int, int] | None = None,
    rcvbuf: int = 0,
    tls: ssl.SSLContext | None = None,
) -> RawPeer:
    peer = await RawPeer.connect(served.port, settings, rcvbuf=rcvbuf, tls=tls)
    first = await peer.next_frame()
    assert first is not None and first.type == frames.SETTINGS and not first.flags & frames.ACK
    announced = dict(frames.parse_settings(first.payload))
    assert announced[frames.MAX_CONCURRENT_STREAMS] == MAX_CONCURRENT_STREAMS
    return peer


@_EAGER_OR_NOT
@pytest.mark.anyio
async def test_unary_call_round_trip_and_settings_ping_acks(served: Served, kind: str) -> None:
    peer = await _peer(served)
    ack = await peer.until(frames.SETTINGS)
    assert ack.flags & frames.ACK
    peer.send(frames.ping(b"pingpong", ack=False))
    pong = await peer.until(frames.PING)
    assert pong.flags & frames.ACK and pong.payload == b"pingpong"
    peer.request(1, f"/t.T/{kind}Echo")
    peer.message(1, b"hello")
    headers, data, trailers = await peer.response(1)
    assert headers[b":status"] == b"200" and headers[b"content-type"] == b"application/grpc"
    assert data == b"\x00\x00\x00\x00\x05hello" and trailers[b"grpc-status"] == b"0"
    await peer.close()


@pytest.mark.parametrize(
    ("kwargs", "http_status", "words"),
    [
        ({"content_type": b"text/plain"}, b"415", b"application/grpc"),
        ({"content_type": None}, b"415", b"missing content-type"),
        ({"te": False}, b"400", b"te: trailers"),
        ({"method": b"GET"}, b"405", b"POST"),
    ],
)
@pytest.mark.anyio
async def test_requests_that_are_not_grpc_get_an_http_status(
    served: Served, kwargs: dict[str, Any], http_status: bytes, words: bytes
) -> None:
    peer = await _peer(served)
    peer.request(1, "/t.T/Echo", end=True, **kwargs)
    headers, _, trailers = await peer.response(1)
    assert headers[b":status"] == http_status and trailers[b"grpc-status"] == b"2"
    assert words in trailers[b"grpc-message"]
    peer.request(3, "/t.T/Echo")  # the connection still serves
    peer.message(3, b"again")
    assert (await peer.response(3))[1].endswith(b"again")
    await peer.close()


@_EAGER_OR_NOT
@pytest.mark.anyio
async def test_unknown_method_refused_calls_and_handler_errors_get_grpc_statuses(
    served: Served, kind: str
) -> None:
    peer = await _peer(served)
    peer.request(1, "/t.T/Nope", end=True)
    _, _, trailers = await peer.response(1)
    assert trailers[b"grpc-status"] == b"12" and b"/t.T/Nope" in trailers[b"grpc-message"]
    peer.request(3, f"/t.T/{kind}Echo", extra=[(b"x-refuse", b"1")], end=True)
    _, _, trailers = await peer.response(3)
    assert trailers[b"grpc-status"] == b"7"
    assert trailers[b"grpc-message"] == b"refused: %C3%BCn%C3%AFcode %25 sign"
    peer.request(5, f"/t.T/{kind}Boom", end=True)
    _, _, trailers = await peer.response(5)
    assert trailers[b"grpc-status"] == b"2" and b"Traceback" not in trailers[b"grpc-message"]
    assert served.policy.running == 0
    await peer.close()


@_EAGER_OR_NOT
@pytest.mark.anyio
async def test_deadline_cancels_the_handler_and_answers_deadline_exceeded(served: Served, kind: str) -> None:
    peer = await _peer(served)
    peer.request(1, f"/t.T/{kind}Hang", extra=[(b"grpc-timeout", b"50m")])
    peer.message(1, b"")
    _, _, trailers = await peer.response(1)
    assert trailers[b"grpc-status"] == b"4"
    assert served.service.cancelled == [f"/t.T/{kind}Hang"]
    peer.request(3, f"/t.T/{kind}Hang", extra=[(b"grpc-timeout", b"soon")], end=True)
    _, _, trailers = await peer.response(3)
    assert trailers[b"grpc-status"] == b"2" and b"grpc-timeout" in trailers[b"grpc-message"]
    await peer.close()


@_EAGER_OR_NOT
@pytest.mark.anyio
async def test_client_reset_cancels_the_handler(served: Served, kind: str) -> None:
    peer = await _peer(served)
    peer.request(1, f"/t.T/{kind}Hang")
    peer.message(1, b"")
    await asyncio.wait_for(served.service.hanging.wait(), 10)
    assert served.policy.running == 1
    peer.send(frames.rst_stream(1, ErrorCode.CANCEL))
    peer.request(3, f"/t.T/{kind}Echo")  # answered after the reset was handled
    peer.message(3, b"x")
    await peer.response(3)
    assert served.service.cancelled == [f"/t.T/{kind}Hang"] and served.policy.running == 0
    await peer.close()


@_EAGER_OR_NOT
@pytest.mark.anyio
async def test_a_client_sending_past_the_stream_window_is_reset(served: Served, kind: str) -> None:
    peer = await _peer(served)
    peer.request(1, f"/t.T/{kind}Hang")
    peer.message(1, b"", end=False)  # read by the handler, which then reads nothing more
    await asyncio.wait_for(served.service.hanging.wait(), 10)
    chunk = bytes(16384)
    for _ in range(STREAM_WINDOW // len(chunk) + 1):  # the window, 5 bytes credited, and more
        peer.send(frames.data_header(1, len(chunk), False) + chunk)
    reset = await peer.until(frames.RST_STREAM, 1)
    assert frames.parse_rst_stream(reset.payload) == ErrorCode.FLOW_CONTROL_ERROR
    peer.request(3, f"/t.T/{kind}Echo")  # the connection window was given back: the connection still serves
    peer.message(3, b"x")
    assert (await peer.response(3))[1].endswith(b"x")
    assert served.service.cancelled == [f"/t.T/{kind}Hang"]
    await peer.close()


@_EAGER_OR_NOT
@pytest.mark.anyio
async def test_streams_beyond_the_concurrency_limit_are_refused(served: Served, kind: str) -> None:
    peer = await _peer(served)
    for i in range(MAX_CONCURRENT_STREAMS):
        peer.request(1 + 2 * i, f"/t.T/{kind}Hang")
    extra = 1 + 2 * MAX_CONCURRENT_STREAMS
    peer.request(extra, f"/t.T/{kind}Hang")
    reset = await peer.until(frames.RST_STREAM, extra)
    assert frames.parse_rst_stream(reset.payload) == ErrorCode.REFUSED_STREAM
    await peer.close()


_BAD_HPACK = frames.frame_header(1, frames.HEADERS, frames.END_HEADERS, 1) + b"\x80"  # index 0


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (frames.frame_header(4, frames.SETTINGS, 0, 0) + b"\0" * 4, ErrorCode.FRAME_SIZE_ERROR),
        (frames.settings_frame({frames.INITIAL_WINDOW_SIZE: 2**31}), ErrorCode.FLOW_CONTROL_ERROR),
        (
            frames.frame_header(1, frames.HEADERS, frames.END_HEADERS, 1) + b"\x80",
            ErrorCode.COMPRESSION_ERROR,
        ),
        (frames.frame_header(5, frames.DATA, 0, 7) + b"\0" * 5, ErrorCode.PROTOCOL_ERROR),
        (
            frames.window_update(0, 1).replace(b"\x00\x00\x00\x01", b"\x00\x00\x00\x00"),
            ErrorCode.PROTOCOL_ERROR,
        ),
        (frames.frame_header(1 << 20, frames.DATA, 0, 1), ErrorCode.FRAME_SIZE_ERROR),
    ],
)
@pytest.mark.anyio
async def test_malformed_http2_ends_the_connection_with_goaway(
    served: Served, raw: bytes, code: ErrorCode
) -> None:
    peer = await _peer(served)
    peer.send(raw)
    away = await peer.until(frames.GOAWAY)
    assert frames.parse_goaway(away.payload)[1] == code
    await peer.close()
    again = await _peer(served)  # the server itself is fine
    again.request(1, "/t.T/Echo")
    again.message(1, b"ok")
    assert (await again.response(1))[1].endswith(b"ok")
    await again.close()


@pytest.mark.anyio
async def test_a_bad_preface_is_a_protocol_error(served: Served) -> None:
    peer = await RawPeer.connect(served.port, preface=False)
    peer.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    away = await peer.until(frames.GOAWAY)
    assert frames.parse_goaway(away.payload)[1] == ErrorCode.PROTOCOL_ERROR
    await peer.close()


@pytest.mark.anyio
async def test_replies_never_exceed_the_peer_windows(served: Served) -> None:
    peer = await _peer(served, {frames.INITIAL_WINDOW_SIZE: 1000})
    peer.request(1, "/t.T/Big")
    peer.message(1, b"5120")
    got = 0
    while got < 1000:
        frame = await peer.until(frames.DATA, 1)
        got += len(frame.payload)
    assert got == 1000
    peer.send(frames.ping(b"12345678", ack=False))  # a round trip: nothing more arrives meanwhile
    while (frame := await peer.next_frame()) is not None and frame.type != frames.PING:
        assert frame.type != frames.DATA, "DATA beyond the stream window"
    peer.send(frames.window_update(1, 1 << 20))
    rest = 5120 + 5 - 1000
    while rest:
        frame = await peer.until(frames.DATA, 1)
        rest -= len(frame.payload)
    trailers = await peer.until(frames.HEADERS, 1)
    assert trailers.payload[b"grpc-status"] == b"0"  # type: ignore[index]
    await peer.close()


@_EAGER_OR_NOT
@pytest.mark.anyio
async def test_close_sends_goaway_and_cancels_running_calls(served: Served, kind: str) -> None:
    peer = await _peer(served)
    peer.request(1, f"/t.T/{kind}Hang")
    peer.message(1, b"")
    await asyncio.wait_for(served.service.hanging.wait(), 10)
    served.server.close()
    away = await peer.until(frames.GOAWAY)
    last, code, _ = frames.parse_goaway(away.payload)
    assert (last, code) == (1, ErrorCode.NO_ERROR)
    while await peer.next_frame() is not None:  # up to the server's FIN
        pass
    assert served.service.cancelled == [f"/t.T/{kind}Hang"]
    await peer.close()  # as a client does on GOAWAY and end of stream
    assert await served.server.wait_closed(5)


@pytest.mark.parametrize("over", ["tcp", "tls"])
@pytest.mark.anyio
async def test_a_client_reads_a_finished_reply_to_its_end_after_the_server_closed(
    monkeypatch: pytest.MonkeyPatch, over: str
) -> None:
    # A graceful stop closes a connection once its calls have finished, while the client may still
    # be reading the last reply. Were the socket closed outright, the WINDOW_UPDATEs the client
    # sends as it reads would make the kernel answer with a reset that drops the rest of the reply
    # (CI saw grpcio's "Connection reset by peer" so). The server half-closes and reads on instead
    # (over TLS without the FIN, which TLS transports cannot send).
    monkeypatch.setattr(protocol_module, "LINGER_SILENCE", 60.0)
    server_ctx, client_ctx = _tls_pair() if over == "tls" else (None, None)
    size = 192 << 10  # more than the client's buffers (a small socket buffer, the reader's 128 KiB)
    async with _serving(server_ctx) as served:
        peer = await _peer(served, {frames.INITIAL_WINDOW_SIZE: (1 << 31) - 1}, 4096, client_ctx)
        peer.send(frames.window_update(0, 1 << 30))
        peer.request(1, "/t.T/Big")
        peer.message(1, str(size).encode())
        await asyncio.wait_for(served.service.big_sent.wait(), WAIT)  # the call has finished
        (conn,) = served.server.connections
        assert unacknowledged_bytes(conn.transport)  # part of the reply is still on its way
        served.server.close()
        _, data, trailers = await peer.response(1)  # reading, the client sends WINDOW_UPDATEs
        assert len(data) == size + 5 and trailers[b"grpc-status"] == b"0"
        await peer.until(frames.GOAWAY)
        assert served.server.connections  # the server reads on until the client closes its side
        if over == "tcp":
            assert await peer.next_frame() is None  # the server's FIN: an orderly end, no reset
        await peer.close()
        assert await served.server.wait_closed(5)


@pytest.mark.anyio
async def test_a_connection_with_nothing_under_way_is_closed_at_once(served: Served) -> None:
    peer = await _peer(served)
    peer.request(1, "/t.T/Echo")
    peer.message(1, b"x")
    await peer.response(1)
    (conn,) = served.server.connections
    async with asyncio.timeout(WAIT):
        while unacknowledged_bytes(conn.transport):  # until the client's kernel has every byte
            await asyncio.sleep(0)
    served.server.close()
    assert not served.server.connections or conn.transport.is_closing()
    assert await served.server.wait_closed(protocol_module.LINGER_SILENCE / 2)
    await peer.close()


async def _hanging(served: Served) -> tuple[RawPeer, GrpcProtocol]:
    """A client with a call under way (Hang, started) and the server's side of its connection."""
    peer = await _peer(served)
    peer.request(1, "/t.T/Hang")
    peer.message(1, b"x")
    await asyncio.wait_for(served.service.hanging.wait(), WAIT)
    (conn,) = served.server.connections
    return peer, conn


@pytest.mark.anyio
async def test_a_half_closed_connection_whose_client_stays_silent_is_closed(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A client that reads nothing more (a sync Client between calls) must not hold a stop up
    # until wait_closed gives up: a half-closed connection whose client has every byte and stays
    # silent is closed after LINGER_SILENCE.
    monkeypatch.setattr(protocol_module, "LINGER_SILENCE", 0.05)
    peer, conn = await _hanging(served)  # a call under way at the close: the connection half-closes
    served.server.close()
    assert not conn.transport.is_closing()  # half-closed, reading on
    assert await served.server.wait_closed(5)  # the client never closed its side
    await peer.close()


@pytest.mark.anyio
async def test_a_half_closed_connection_is_dropped_after_linger_max_whatever_its_client_does(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A protocol error closes a connection too, with no server stop (and no wait_closed) to bound
    # the linger: a client that keeps talking must not keep its socket open.
    monkeypatch.setattr(protocol_module, "LINGER_SILENCE", 0.05)
    monkeypatch.setattr(protocol_module, "LINGER_MAX", 0.3)
    peer, conn = await _hanging(served)
    conn.fail(ErrorCode.PROTOCOL_ERROR, "a test")
    loop = asyncio.get_running_loop()
    started = loop.time()
    while served.server.connections:
        assert loop.time() - started < WAIT, "the half-closed connection was never dropped"
        peer.send(frames.ping(b"12345678", False))  # never silent for LINGER_SILENCE
        await asyncio.sleep(0.01)
    assert loop.time() - started >= 0.3 - 0.05
    await peer.close()


class RecordingTransport:
    """Stands in for asyncio's socket transport: records each write."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0

    def close(self) -> None:
        pass


@pytest.mark.anyio
async def test_a_unary_reply_leaves_in_one_write() -> None:
    service, policy = Service(), Policy()
    server = GrpcServer(MethodTable([service]), policy, max_message_bytes=MAX_MESSAGE)
    conn = GrpcProtocol(server)
    transport = RecordingTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    encoder = HeaderEncoder()
    block = encoder.encode(
        [
            (b":method", b"POST"),
            (b":scheme", b"http"),
            (b":path", b"/t.T/Echo"),
            (b"content-type", b"application/grpc"),
            (b"te", b"trailers"),
        ]
    )
    body = b"\x00\x00\x00\x00\x02hi"
    request = (
        frames.PREFACE
        + frames.settings_frame({})
        + frames.headers_frames(1, block, False, frames.DEFAULT_MAX_FRAME)[0]
        + frames.data_header(1, len(body), True)
        + body
    )
    conn.data_received(request)
    tasks = [call.task for call in conn.calls.values() if call.task is not None]
    assert len(tasks) == 1
    conn._flush()  # our SETTINGS and the acknowledgement of theirs
    transport.writes.clear()
    await tasks[0]
    conn._flush()  # what the loop would do before it next waits for I/O
    assert len(transport.writes) == 1
    reader = FrameReader()
    reader.feed(transport.writes[0])
    kinds = [(f.type, f.flags & frames.END_STREAM) for f in reader]
    assert kinds == [(frames.HEADERS, 0), (frames.DATA, 0), (frames.HEADERS, frames.END_STREAM)]
    decoder = HeaderDecoder()
    reader.feed(transport.writes[0])
    assert decoder.decode(next(reader).payload) == [
        (b":status", b"200"),
        (b"content-type", b"application/grpc"),
    ]
    conn.connection_lost(None)


def _unary_request(stream_id: int, path: bytes, encoder: HeaderEncoder) -> bytes:
    block = encoder.encode(
        [
            (b":method", b"POST"),
            (b":scheme", b"http"),
            (b":path", path),
            (b"content-type", b"application/grpc"),
            (b"te", b"trailers"),
        ]
    )
    body = b"\x00\x00\x00\x00\x02hi"
    return (
        frames.headers_frames(stream_id, block, False, frames.DEFAULT_MAX_FRAME)[0]
        + frames.data_header(stream_id, len(body), True)
        + body
    )


@pytest.mark.anyio
async def test_only_the_lone_call_of_a_read_runs_its_first_step_alone() -> None:
    service, policy = Service(), Policy()
    server = GrpcServer(MethodTable([service]), policy, max_message_bytes=MAX_MESSAGE)
    conn = GrpcProtocol(server)
    conn.connection_made(RecordingTransport())  # type: ignore[arg-type]
    encoder = HeaderEncoder()
    conn.data_received(
        frames.PREFACE + frames.settings_frame({}) + _unary_request(1, b"/t.T/EagerAlone", encoder)
    )
    conn.data_received(
        _unary_request(3, b"/t.T/EagerAlone", encoder) + _unary_request(5, b"/t.T/EagerAlone", encoder)
    )
    conn.data_received(_unary_request(7, b"/t.T/Alone", encoder))  # a task's handler is never alone
    task = conn.calls[7].task
    assert task is not None
    await task
    assert service.alone == [True, False, False, False]
    assert not first_step_alone()
    conn.connection_lost(None)
