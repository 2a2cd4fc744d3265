"""Start a grpclib server listening, and learn the port it got.

grpclib does not publish the asyncio server it listens with, yet the runtime needs two things from it:
the bound port (the configured port may be 0) and, at shutdown, a way to stop accepting connections
while the calls in flight finish. Both come from the private ``Server._server`` when grpclib has it
(every 0.4 release does). When it does not, :func:`start_listening` binds the listening socket itself
and hands it to grpclib's public ``start(sock=...)``; the port then comes from that socket and, at
shutdown, new connections are refused only when grpclib closes (the runtime's call tracker refuses new
calls meanwhile). The fallback is reported once (:func:`pingthings.fastpaths.report_fallback`).
"""

from __future__ import annotations

import socket
import ssl
from typing import Any

import grpclib.server

from pingthings.fastpaths import report_fallback


class Listener:
    """The listening side of a started grpclib server.

    Parameters
    ----------
    port
        The port the server listens on.
    asyncio_server
        grpclib's asyncio server, when it could be reached; None in the fallback.
    """

    def __init__(self, port: int, asyncio_server: Any | None) -> None:
        self.port = port
        self._asyncio_server = asyncio_server

    @property
    def uses_internals(self) -> bool:
        """True when grpclib's asyncio server was reached (the normal case), False in the fallback."""
        return self._asyncio_server is not None

    def stop_accepting(self) -> None:
        """Stop accepting new connections; existing ones continue (does nothing in the fallback)."""
        if self._asyncio_server is not None:
            self._asyncio_server.close()

    def close_clients(self) -> None:
        """Close the client connections at once, where asyncio can (Python 3.13 and later)."""
        close_clients = getattr(self._asyncio_server, "close_clients", None)
        if close_clients is not None:
            close_clients()


async def start_listening(
    server: grpclib.server.Server,
    host: str,
    port: int,
    ssl_context: ssl.SSLContext | None,
    *,
    use_internals: bool = True,
) -> Listener:
    """Start ``server`` on ``host:port`` and return its :class:`Listener`.

    Parameters
    ----------
    server
        A grpclib server not yet started.
    host, port
        Where to listen; port 0 picks a free port.
    ssl_context
        TLS settings, or None for plaintext.
    use_internals
        Read grpclib's ``Server._server`` when it exists (the normal case). False takes the fallback,
        which binds the socket here; tests use it to exercise that path.

    Raises
    ------
    RuntimeError
        grpclib started without a listening socket.
    OSError
        The address cannot be bound.
    """
    if use_internals and "_server" in vars(server) and server._server is None:
        await server.start(host, port, ssl=ssl_context)
        asyncio_server = server._server
        sockets = asyncio_server.sockets if asyncio_server is not None else ()
        if not sockets:
            raise RuntimeError("the gRPC server has no listening socket")
        return Listener(int(sockets[0].getsockname()[1]), asyncio_server)
    if use_internals:
        report_fallback("server-listener", "grpclib's Server has no _server attribute")
    sock = _bind(host, port)
    try:
        await server.start(sock=sock, ssl=ssl_context)
    except BaseException:
        sock.close()
        raise
    return Listener(int(sock.getsockname()[1]), None)


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``; a wildcard host listens on IPv4 and IPv6 where possible."""
    if host in ("", "::") and socket.has_dualstack_ipv6():
        return socket.create_server(("", port), family=socket.AF_INET6, dualstack_ipv6=True)
    if host == "":
        return socket.create_server(("0.0.0.0", port))
    family, _, _, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    return socket.create_server(address[:2], family=family)
