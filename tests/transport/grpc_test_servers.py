"""Two gRPC servers implementing the same raw-bytes test service, for conformance tests of the channel.

One runs on grpclib (hand-made ``__mapping__`` and a pass-through codec), the other on grpcio's asyncio API
(generic handlers, no serializers). Each runs in its own thread with its own asyncio loop, bound to
127.0.0.1, and records what it observed (cancellations, metadata) in a :class:`Probe`.

Service ``/pingthings.test.Echo/``:

* ``Unary``: replies ``b"echo:" + request``; a request ``b"status:<code>:<message>"`` fails with that status.
* ``Headers``: replies JSON ``{"metadata": {...}, "time_remaining": seconds or null}``.
* ``Stream``: request JSON ``{"count", "size", "then"}``; sends ``count`` messages
  ``stream_message(i, size)``, then ends OK (``then="ok"``), fails with ``status`` (``then="fail"``) or waits
  until cancelled (``then="hang"``).
* ``Bidi``: replies ``b"re:" + m`` to every message ``m``; after the client half-closes, ``b"done:<n>"``.
* ``Hang``: unary call that never answers (waits until cancelled).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import grpc.aio
import grpclib.const
import grpclib.encoding.base
import grpclib.exceptions
import grpclib.server
from grpclib.const import Cardinality, Status

SERVICE = "pingthings.test.Echo"
SERVER_KINDS_FOR_TESTS = ["grpclib", "grpcio"]


def method(name: str) -> str:
    """Full path of a test-service method."""
    return f"/{SERVICE}/{name}"


def stream_message(index: int, size: int) -> bytes:
    """The ``index``-th message of a ``Stream`` call: a pattern that tells messages apart."""
    unit = index.to_bytes(4, "big")
    return (unit * (size // 4 + 1))[:size]


def stream_request(count: int, size: int, then: str = "ok", status: int = 0, message: str = "") -> bytes:
    """Encode a ``Stream`` request."""
    spec = {"count": count, "size": size, "then": then, "status": status, "message": message}
    return json.dumps(spec).encode()


class Probe:
    """What a server saw, shared between the server thread and the test."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self.cancelled = 0
        self.hanging = 0
        self.shutting_down = threading.Event()

    def note(self, what: str) -> None:
        with self._lock:
            setattr(self, what, getattr(self, what) + 1)
            self._lock.notify_all()

    def wait_for(self, what: str, count: int, timeout: float = 10.0) -> bool:
        """Block until the counter ``what`` reaches ``count`` (True) or ``timeout`` passes (False)."""
        with self._lock:
            return self._lock.wait_for(lambda: getattr(self, what) >= count, timeout)


async def cancellation_stress(ch: Any, seed: int, streams: int = 24) -> None:
    """Run many concurrent Stream calls on ``ch``; cancel some by ``break`` after a random message and some
    by a random time limit (which may strike inside a socket read). Assert that every call received an
    intact prefix of its messages (all of them when not cancelled), and that the channel still works.
    """
    import random

    import anyio

    rng = random.Random(seed)
    plans = []
    for _ in range(streams):
        count, size = rng.randint(5, 40), rng.choice([1000, 50_000, 300_000])
        mode = rng.choice(["complete", "break", "time-limit"])
        plans.append((count, size, mode, rng.randint(0, count - 1), rng.uniform(0.0, 0.15)))
    outcomes: dict[int, tuple[list[bytes], bool]] = {}

    async def consume(index: int, count: int, size: int, mode: str, cut: int, limit: float) -> None:
        got: list[bytes] = []
        with anyio.move_on_after(limit if mode == "time-limit" else None) as scope:
            async with ch.server_stream(method("Stream"), stream_request(count, size)) as messages:
                async for message in messages:
                    got.append(bytes(message))
                    if mode == "break" and len(got) > cut:
                        break
        outcomes[index] = (got, scope.cancelled_caught)

    async with anyio.create_task_group() as tg:
        for index, plan in enumerate(plans):
            tg.start_soon(consume, index, *plan)
    for index, (count, size, mode, cut, _) in enumerate(plans):
        got, cancelled = outcomes[index]
        expected = [stream_message(i, size) for i in range(count)]
        assert got == expected[: len(got)], f"stream {index} received corrupted data"
        if mode == "complete" or (mode == "time-limit" and not cancelled):
            assert got == expected, f"stream {index} is incomplete"
        if mode == "break":
            assert len(got) == cut + 1
    assert await ch.unary(method("Unary"), b"after the storm") == b"echo:after the storm"


# ---------------------------------------------------------------------- the service logic, server-neutral


def unary_reply(request: bytes) -> tuple[bytes | None, tuple[int, str] | None]:
    if request.startswith(b"status:"):
        _, code, text = request.decode().split(":", 2)
        return None, (int(code), text)
    return b"echo:" + request, None


# ---------------------------------------------------------------------- grpclib


class _RawCodec(grpclib.encoding.base.CodecBase):
    """Pass message bytes through unchanged."""

    __content_subtype__ = "proto"

    def encode(self, message: Any, message_type: Any) -> bytes:
        return bytes(message)

    def decode(self, data: bytes, message_type: Any) -> Any:
        return data


class _GrpclibEcho:
    def __init__(self, probe: Probe) -> None:
        self.probe = probe

    async def unary(self, stream: grpclib.server.Stream) -> None:
        request = await stream.recv_message()
        reply, failure = unary_reply(request)
        if failure is not None:
            raise grpclib.exceptions.GRPCError(Status(failure[0]), failure[1])
        await stream.send_message(reply)

    async def headers(self, stream: grpclib.server.Stream) -> None:
        await stream.recv_message()
        metadata = {key: value for key, value in stream.metadata.items()}
        if stream.user_agent is not None:
            metadata["user-agent"] = stream.user_agent
        remaining = stream.deadline.time_remaining() if stream.deadline is not None else None
        await stream.send_message(json.dumps({"metadata": metadata, "time_remaining": remaining}).encode())

    async def stream(self, stream: grpclib.server.Stream) -> None:
        spec = json.loads(await stream.recv_message())
        for index in range(spec["count"]):
            await stream.send_message(stream_message(index, spec["size"]))
        await self._then(spec)

    async def _then(self, spec: dict[str, Any]) -> None:
        if spec["then"] == "fail":
            raise grpclib.exceptions.GRPCError(Status(spec["status"]), spec["message"])
        if spec["then"] == "hang":
            await self._hang()

    async def _hang(self) -> None:
        self.probe.note("hanging")
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.probe.note("cancelled")
            raise

    async def hang(self, stream: grpclib.server.Stream) -> None:
        await stream.recv_message()
        await self._hang()

    async def bidi(self, stream: grpclib.server.Stream) -> None:
        count = 0
        async for message in stream:
            count += 1
            await stream.send_message(b"re:" + message)
        await stream.send_message(f"done:{count}".encode())

    def __mapping__(self) -> dict[str, grpclib.const.Handler]:
        def handler(func: Callable[..., Any], cardinality: Cardinality) -> grpclib.const.Handler:
            return grpclib.const.Handler(func, cardinality, bytes, bytes)

        return {
            method("Unary"): handler(self.unary, Cardinality.UNARY_UNARY),
            method("Headers"): handler(self.headers, Cardinality.UNARY_UNARY),
            method("Stream"): handler(self.stream, Cardinality.UNARY_STREAM),
            method("Hang"): handler(self.hang, Cardinality.UNARY_UNARY),
            method("Bidi"): handler(self.bidi, Cardinality.STREAM_STREAM),
        }


class _ClosingGrpclibServer(grpclib.server.Server):
    """grpclib's ``close()`` leaves client connections open; this one remembers them so that stopping the
    server closes them too, as the end of a server process would."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.transports: list[asyncio.BaseTransport] = []

    def _protocol_factory(self) -> Any:
        protocol = super()._protocol_factory()
        connection_made = protocol.connection_made

        def remember(transport: asyncio.BaseTransport) -> None:
            self.transports.append(transport)
            connection_made(transport)

        protocol.connection_made = remember  # type: ignore[method-assign]
        return protocol


# ---------------------------------------------------------------------- grpcio (asyncio API)


class _GrpcioEcho:
    def __init__(self, probe: Probe) -> None:
        self.probe = probe

    async def unary(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        reply, failure = unary_reply(request)
        if failure is not None:
            await context.abort(grpc.StatusCode(_grpcio_code(failure[0])), failure[1])
        assert reply is not None
        return reply

    async def headers(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        metadata = {key: value for key, value in (context.invocation_metadata() or ())}
        remaining = context.time_remaining()
        return json.dumps({"metadata": metadata, "time_remaining": remaining}).encode()

    async def stream(self, request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        spec = json.loads(request)
        for index in range(spec["count"]):
            yield stream_message(index, spec["size"])
        if spec["then"] == "fail":
            await context.abort(grpc.StatusCode(_grpcio_code(spec["status"])), spec["message"])
        if spec["then"] == "hang":
            await self._hang()
        if spec["then"] == "finish-during-shutdown":
            # Wait for a graceful shutdown to begin, give the GOAWAY time to reach the client, then
            # send one more message and end OK.
            self.probe.note("hanging")
            await asyncio.get_running_loop().run_in_executor(None, self.probe.shutting_down.wait)
            await asyncio.sleep(1.0)
            yield stream_message(spec["count"], spec["size"])

    async def _hang(self) -> None:
        self.probe.note("hanging")
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.probe.note("cancelled")
            raise

    async def hang(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        await self._hang()
        return b""

    async def bidi(
        self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        count = 0
        async for message in requests:
            count += 1
            yield b"re:" + message
        yield f"done:{count}".encode()

    def generic_handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "Unary": grpc.unary_unary_rpc_method_handler(self.unary),
                "Headers": grpc.unary_unary_rpc_method_handler(self.headers),
                "Stream": grpc.unary_stream_rpc_method_handler(self.stream),
                "Hang": grpc.unary_unary_rpc_method_handler(self.hang),
                "Bidi": grpc.stream_stream_rpc_method_handler(self.bidi),
            },
        )


def _grpcio_code(code: int) -> tuple[int, str]:
    """grpc.StatusCode's enum values are (int, name) pairs."""
    for member in grpc.StatusCode:
        if member.value[0] == code:
            return member.value
    raise ValueError(f"no grpc.StatusCode {code}")


# ---------------------------------------------------------------------- running a server in a thread


class ServerThread:
    """A gRPC test server on 127.0.0.1 in a thread with its own asyncio loop.

    Parameters
    ----------
    kind
        ``"grpclib"`` or ``"grpcio"``.
    port
        Port to bind; 0 picks a free one (the restart test re-binds the same port).
    tls
        ``(certificate chain PEM, private key PEM)`` to serve TLS with ALPN h2, or None.
    compression
        grpcio only: compress every reply with this algorithm (as grpc-go's RPCCompressor does, whatever
        the client advertised), or None.
    """

    def __init__(
        self,
        kind: str,
        port: int = 0,
        tls: tuple[bytes, bytes] | None = None,
        compression: grpc.Compression | None = None,
    ) -> None:
        self.kind = kind
        self._compression = compression
        self.probe = Probe()
        self.port = port
        self._tls = tls
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._grace: float | None = None
        self._thread = threading.Thread(target=self._run, name=f"{kind}-test-server", daemon=True)

    def start(self) -> ServerThread:
        self._thread.start()
        if not self._ready.wait(20):
            raise RuntimeError(f"{self.kind} test server did not start")
        if self._error is not None:
            raise RuntimeError(f"{self.kind} test server failed to start") from self._error
        return self

    def stop(self, grace: float | None = None) -> None:
        """Stop the server; with ``grace`` (grpcio only), running calls get that long to finish."""
        self._grace = grace
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(20)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to start()
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        if self.kind == "grpclib":
            await self._serve_grpclib()
        else:
            await self._serve_grpcio()

    async def _serve_grpclib(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        context = None
        if self._tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            _load_cert(context, *self._tls)
            context.set_alpn_protocols(["h2"])
        server = _ClosingGrpclibServer([_GrpclibEcho(self.probe)], codec=_RawCodec())
        await server.start(sock=sock, ssl=context)
        self._ready.set()
        try:
            await self._stop.wait()  # type: ignore[union-attr]
        finally:
            server.close()
            await server.wait_closed()
            for transport in server.transports:
                transport.close()

    async def _serve_grpcio(self) -> None:
        server = grpc.aio.server(compression=self._compression)
        server.add_generic_rpc_handlers((_GrpcioEcho(self.probe).generic_handler(),))
        address = f"127.0.0.1:{self.port}"
        if self._tls is None:
            self.port = server.add_insecure_port(address)
        else:
            chain, key = self._tls
            self.port = server.add_secure_port(address, grpc.ssl_server_credentials([(key, chain)]))
        await server.start()
        self._ready.set()
        try:
            await self._stop.wait()  # type: ignore[union-attr]
        finally:
            stopping = asyncio.ensure_future(server.stop(grace=self._grace))
            await asyncio.sleep(0.05)  # let grpc begin the shutdown (GOAWAY) before handlers learn of it
            self.probe.shutting_down.set()
            await stopping


def _load_cert(context: ssl.SSLContext, chain: bytes, key: bytes) -> None:
    """Load a PEM certificate chain and key held in memory (ssl wants files)."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        chain_path, key_path = Path(folder, "chain.pem"), Path(folder, "key.pem")
        chain_path.write_bytes(chain)
        key_path.write_bytes(key)
        context.load_cert_chain(chain_path, key_path)


@contextlib.contextmanager
def running(
    kind: str,
    port: int = 0,
    tls: tuple[bytes, bytes] | None = None,
    compression: grpc.Compression | None = None,
) -> Any:
    """Run a test server for the duration of a ``with`` block."""
    server = ServerThread(kind, port, tls, compression).start()
    try:
        yield server
    finally:
        server.stop()
