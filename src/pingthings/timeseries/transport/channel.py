"""The gRPC channel: one lazily opened HTTP/2 connection to ``host:port``, shared by every call.

The channel keeps no background task. It connects on the first call, and opens a new connection on the next
call after the old one failed, was closed by the server (GOAWAY, EOF) or went stale while idle. Calls still
running on a retired connection finish there; the connection closes when its last call ends.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence

import anyio

from pingthings.wire.http2.hpack import HeaderEncoder

from .backend import Backend, current_backend
from .calls import BidiCall, ServerStreamCall, UnaryCall
from .compression import check_request_compression
from .connection import Connection
from .errors import TransportError
from .metadata import MetadataValue, encode_metadata, encoding_headers, request_headers, validate_method

DEFAULT_STREAM_WINDOW = 32 << 20
"""Inbound flow-control window of each stream (bytes)."""

DEFAULT_CONNECTION_WINDOW = 128 << 20
"""Inbound flow-control window of the whole connection (bytes)."""

DEFAULT_MAX_MESSAGE_SIZE = (1 << 31) - 1
"""Largest reply message accepted (bytes)."""

_MAX_CACHED_METHODS = 256
"""Methods whose request headers a channel keeps ready."""

DEFAULT_KEEPALIVE_INTERVAL = 4.0
"""Seconds of silence during a waiting call before a PING checks the server; an unanswered PING fails the
connection one more interval later, so a dead or frozen server is noticed within about 8 s."""


class Channel:
    """An anyio-native gRPC client channel over HTTP/2, usable from asyncio and trio alike.

    Parameters
    ----------
    host, port
        The server.
    ssl_context
        TLS settings (see :func:`~.tls.client_ssl_context`); None for plain-text HTTP/2. The channel sets the
        context's ALPN protocols to ``["h2"]``.
    metadata
        Header pairs sent with every call, e.g. ``(("authorization", "Bearer <key>"),)``.
    connect_timeout
        Seconds allowed for TCP connect and TLS handshake.
    max_frame_size
        Largest HTTP/2 DATA frame the server may send us (16 KiB .. 16 MiB - 1); large frames cost less CPU.
    keepalive_interval
        Seconds of silence during a waiting call before a PING checks the server, and seconds the server has
        to answer it; None disables. Idle connections are never pinged.
    stream_window, connection_window
        Inbound flow-control windows.
    max_message_size
        Largest reply message accepted, after decompression.
    compression
        ``"gzip"`` to compress request messages (worth it on slow links only), or None (default).
        Replies compressed with gzip or deflate are read whatever this says.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None = None,
        metadata: Sequence[tuple[str, MetadataValue]] = (),
        connect_timeout: float | None = 10.0,
        max_frame_size: int = 1 << 20,
        keepalive_interval: float | None = DEFAULT_KEEPALIVE_INTERVAL,
        stream_window: int = DEFAULT_STREAM_WINDOW,
        connection_window: int = DEFAULT_CONNECTION_WINDOW,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        compression: str | None = None,
    ) -> None:
        if not isinstance(host, str) or not host:
            raise ValueError(f"host must be a non-empty string, got {host!r}")
        if not isinstance(port, int) or not 0 < port < 65536:
            raise ValueError(f"port must be an integer in 1..65535, got {port!r}")
        if not 16_384 <= max_frame_size <= (1 << 24) - 1:
            raise ValueError(f"max_frame_size must be in 16384..16777215, got {max_frame_size}")
        if not 65_535 <= stream_window <= (1 << 31) - 1 or not 65_535 <= connection_window <= (1 << 31) - 1:
            raise ValueError("flow-control windows must be in 65535..2147483647")
        if keepalive_interval is not None and keepalive_interval <= 0:
            raise ValueError(f"keepalive_interval must be positive or None, got {keepalive_interval}")
        self.host = host
        self.port = port
        self.endpoint = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.authority = self.endpoint
        self.scheme = "https" if ssl_context is not None else "http"
        if ssl_context is not None:
            # gRPC needs HTTP/2; the ssl module cannot tell whether ALPN was set, so set it.
            ssl_context.set_alpn_protocols(["h2"])
        self._ssl_context = ssl_context
        #: The encoding requests are compressed with (None: sent as they are).
        self.request_compression = check_request_compression(compression)
        self._metadata = encode_metadata(metadata) + encoding_headers(self.request_compression)
        self._connect_timeout = connect_timeout
        self._options = {
            "max_frame_size": max_frame_size,
            "stream_window": stream_window,
            "connection_window": connection_window,
            "keepalive_interval": keepalive_interval,
            "max_message_size": max_message_size,
        }
        self._blocks: dict[str, bytes] = {}  # encoded request headers per method (channel metadata only)
        self._encoder = HeaderEncoder()
        self._conn: Connection | None = None
        self._connect_lock: anyio.Lock | None = None
        self._connect_attempts = 0
        self._connect_failure: TransportError | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"Channel({self.endpoint!r}, tls={self._ssl_context is not None})"

    # ------------------------------------------------------------------ calls

    async def unary(
        self,
        method: str,
        request: bytes | memoryview,
        *,
        timeout: float | None = None,
        metadata: Sequence[tuple[str, MetadataValue]] = (),
    ) -> bytes:
        """Make a unary call and return the reply message payload.

        Raises
        ------
        GrpcStatusError
            The server answered with a non-OK status, or the deadline passed (status 4).
        TransportError
            The connection failed.
        """
        call = UnaryCall(self, method, timeout, self._call_metadata(method, timeout, metadata))
        return await call.run(request)

    def server_stream(
        self,
        method: str,
        request: bytes | memoryview,
        *,
        timeout: float | None = None,
        metadata: Sequence[tuple[str, MetadataValue]] = (),
        idle_timeout: float | None = None,
    ) -> ServerStreamCall:
        """Start a server-streaming call; use as ``async with ch.server_stream(...) as messages``.

        ``timeout`` bounds the whole call (and is sent to the server as ``grpc-timeout``); ``idle_timeout``
        bounds each wait for the next reply message (and is not sent).
        """
        if idle_timeout is not None and not idle_timeout > 0:
            raise ValueError(f"idle_timeout must be positive or None, got {idle_timeout}")
        return ServerStreamCall(
            self,
            method,
            timeout,
            self._call_metadata(method, timeout, metadata),
            request=request,
            idle_timeout=idle_timeout,
        )

    def bidi(
        self,
        method: str,
        *,
        timeout: float | None = None,
        metadata: Sequence[tuple[str, MetadataValue]] = (),
    ) -> BidiCall:
        """Start a bidirectional-streaming call; use as ``async with ch.bidi(...) as call``."""
        return BidiCall(self, method, timeout, self._call_metadata(method, timeout, metadata))

    def request_block(self, method: str, metadata: list[tuple[bytes, bytes]]) -> bytes:
        """The encoded request header block of a call (``grpc-timeout`` aside), encoded once per method for
        calls that carry only the channel's own metadata.

        The encoder never uses the HPACK dynamic table, so a block stays valid on every connection.
        """
        if metadata is not self._metadata:
            return self._encoder.encode(self._header_list(method, metadata))
        block = self._blocks.get(method)
        if block is None:
            if len(self._blocks) >= _MAX_CACHED_METHODS:
                self._blocks.clear()
            block = self._blocks[method] = self._encoder.encode(self._header_list(method, metadata))
        return block

    def _header_list(self, method: str, metadata: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        return request_headers(
            method=method, authority=self.authority, scheme=self.scheme, timeout=None, metadata=metadata
        )

    def _call_metadata(
        self, method: str, timeout: float | None, metadata: Sequence[tuple[str, MetadataValue]]
    ) -> list[tuple[bytes, bytes]]:
        if method not in self._blocks:
            validate_method(method)
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout must be positive or None, got {timeout}")
        if self._closed:
            raise TransportError("channel closed", self.endpoint)
        return self._metadata + encode_metadata(metadata) if metadata else self._metadata

    # ------------------------------------------------------------------ connection

    def backend(self) -> Backend:
        """The anyio backend of the running event loop: the open connection's (no look-up), else found now."""
        conn = self._conn
        return conn.backend if conn is not None else current_backend()

    def ready_connection(self) -> Connection | None:
        """The current connection if a new call can start on it now, without waiting; else None."""
        conn = self._conn
        return conn if conn is not None and not self._closed and conn.ready_now() else None

    async def connection(self) -> Connection:
        """The connection for a new call: the current one if it takes new streams, else a fresh one."""
        conn = self._conn
        if conn is not None and await conn.ready_for_new_stream():
            return conn
        if self._connect_lock is None:
            self._connect_lock = anyio.Lock()
        attempts_seen = self._connect_attempts
        async with self._connect_lock:
            if self._closed:
                raise TransportError("channel closed", self.endpoint)
            conn = self._conn
            if conn is not None and await conn.ready_for_new_stream():
                return conn
            if self._connect_attempts != attempts_seen and self._connect_failure is not None:
                # Someone tried while this task waited, and failed: share that outcome instead of making
                # every queued call wait out its own connect timeout.
                raise self._connect_failure.fresh()
            if conn is not None:
                self._conn = None
                if conn.streams:
                    conn.retire()
                else:
                    await conn.aclose()
            self._connect_attempts += 1
            self._connect_failure = None
            try:
                conn = await Connection.open(
                    self.host,
                    self.port,
                    endpoint=self.endpoint,
                    ssl_context=self._ssl_context,
                    connect_timeout=self._connect_timeout,
                    **self._options,
                )
            except TransportError as exc:
                self._connect_failure = exc
                raise
            self._conn = conn
            return conn

    async def aclose(self) -> None:
        """Close the connection; calls still running fail with TransportError("channel closed")."""
        self._closed = True
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.aclose()

    async def __aenter__(self) -> Channel:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
