"""The server's listening socket, bound before anything touches the data directory.

The runtime binds the socket itself (:func:`bind_listener`) before it creates or locks the data
directory, so a server that cannot listen (the port is taken, the address is not this machine's)
fails having created nothing. The gRPC server (:class:`~pingthings.server.grpc.shutdown.GrpcServer`)
then serves on that socket, and the bound port is read from it (:func:`bound_port`).
"""

from __future__ import annotations

import os
import socket

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
            sock = socket.create_server(
                ("::", port), family=socket.AF_INET6, dualstack_ipv6=True, backlog=backlog
            )
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
