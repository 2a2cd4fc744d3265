"""The server's listening socket: bound before anything touches the data directory, served by grpclib.

The runtime binds the socket itself (:func:`bind_listener`) before it creates or locks the data
directory, so a server that cannot listen (the port is taken, the address is not this machine's)
fails having created nothing. grpclib then serves on that socket through its public
``start(sock=...)``, and the bound port is read from our own socket.

Stopping gracefully needs one more thing grpclib does not publish: its asyncio server, to stop
accepting connections while the calls in flight finish. :func:`start_listening` takes it from the
private ``Server._server`` when grpclib has it (every 0.4 release does). When it does not, new
connections are refused only once grpclib closes (the runtime's call tracker refuses new calls
meanwhile), and the fallback is reported once (:func:`pingthings.fastpaths.report_fallback`).
"""

from __future__ import annotations

import os
import socket
import ssl
from typing import Any

import grpclib.server

from pingthings.fastpaths import report_fallback

#: Host strings that mean "every interface".
_WILDCARDS = frozenset({"", "0.0.0.0", "::"})


class ListenError(OSError):
    """The server could not bind its listening address (in use, not local, not permitted)."""


def bind_listener(host: str, port: int, backlog: int = 100) -> socket.socket:
    """Bind and listen on ``host:port`` and return the socket (port 0 picks a free port).

    A wildcard host other than ``0.0.0.0`` listens on IPv6 and IPv4 together where the system
    allows it.

    Raises
    ------
    ListenError
        Naming the address and the reason, when it cannot be bound.
    """
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        if host in _WILDCARDS and host != "0.0.0.0" and socket.has_dualstack_ipv6():
            sock = socket.create_server(("::", port), family=socket.AF_INET6, dualstack_ipv6=True,
                                        backlog=backlog)
        else:
            family, _, _, _, address = socket.getaddrinfo(
                host or "0.0.0.0", port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )[0]
            sock = socket.create_server(address[:2], family=family, backlog=backlog)
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise ListenError(exc.errno, f"cannot listen on {shown}: {reason}") from exc
    sock.setblocking(False)
    return sock


def bound_port(sock: socket.socket) -> int:
    """The port ``sock`` listens on (the free port the system chose, for port 0)."""
    return int(sock.getsockname()[1])


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
    sock: socket.socket,
    ssl_context: ssl.SSLContext | None,
    *,
    use_internals: bool = True,
) -> Listener:
    """Serve ``server`` on the bound ``sock`` and return its :class:`Listener`.

    Parameters
    ----------
    server
        A grpclib server not yet started.
    sock
        A listening socket from :func:`bind_listener`; grpclib owns it from here on.
    ssl_context
        TLS settings, or None for plaintext.
    use_internals
        Reach grpclib's asyncio server through ``Server._server`` (the normal case). False takes
        the fallback; tests use it to exercise that path.
    """
    await server.start(sock=sock, ssl=ssl_context)
    asyncio_server = getattr(server, "_server", None) if use_internals else None
    if use_internals and asyncio_server is None:
        report_fallback("server-listener", "grpclib's Server has no _server attribute")
    return Listener(bound_port(sock), asyncio_server)
