"""The listening gRPC server and its graceful stop.

:class:`GrpcServer` serves a :class:`~.dispatch.MethodTable` on an already bound socket, one
:class:`~.protocol.GrpcProtocol` per connection. Stopping is in steps the runtime drives:
:meth:`GrpcServer.stop_accepting` (existing connections continue), then, once the calls in flight
have finished or the grace period is over, :meth:`GrpcServer.close` (GOAWAY on every connection,
remaining calls cancelled, transports closed) and :meth:`GrpcServer.wait_closed`, which drops
connections whose clients do not read.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl

from pingthings.server.grpc.dispatch import CallPolicy, MethodTable
from pingthings.server.grpc.protocol import GrpcProtocol


class GrpcServer:
    """A gRPC server on one listening socket.

    Parameters
    ----------
    methods
        The methods served.
    policy
        Admission and per-call context (see :class:`CallPolicy`).
    max_message_bytes
        The largest request message accepted (checked from its length prefix).
    compress_replies
        Gzip replies for clients that accept it.
    """

    def __init__(
        self,
        methods: MethodTable,
        policy: CallPolicy,
        *,
        max_message_bytes: int,
        compress_replies: bool = False,
    ) -> None:
        self.methods = methods
        self.policy = policy
        self.max_message_bytes = max_message_bytes
        self.compress_replies = compress_replies
        self.connections: set[GrpcProtocol] = set()
        self.loop = asyncio.get_running_loop()
        self._server: asyncio.Server | None = None
        self._no_connections = asyncio.Event()
        self._no_connections.set()

    def track(self, conn: GrpcProtocol) -> None:
        """A connection was made."""
        self.connections.add(conn)
        self._no_connections.clear()

    def forget(self, conn: GrpcProtocol) -> None:
        """A connection was lost."""
        self.connections.discard(conn)
        if not self.connections:
            self._no_connections.set()

    async def start(self, sock: socket.socket, ssl_context: ssl.SSLContext | None) -> None:
        """Serve on the bound, listening ``sock`` (it belongs to the server from here on)."""
        self._server = await self.loop.create_server(
            lambda: GrpcProtocol(self), sock=sock, ssl=ssl_context, start_serving=True
        )

    def stop_accepting(self) -> None:
        """Close the listening socket; open connections and their calls continue."""
        if self._server is not None:
            self._server.close()

    def close(self) -> None:
        """GOAWAY on every connection, cancel the calls still running, close the transports."""
        self.stop_accepting()
        for conn in list(self.connections):
            conn.goaway()
            conn.close()

    async def wait_closed(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for the connections to go; abort the rest. True if none was left."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._no_connections.wait(), timeout)
        clean = not self.connections
        for conn in list(self.connections):
            conn.abort()
            self.forget(conn)
        return clean
