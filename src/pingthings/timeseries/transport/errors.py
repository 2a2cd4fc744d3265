"""Exceptions raised by the gRPC channel, and the one place where low-level errors are translated.

Nothing from the HTTP/2 core, ``ssl``, ``OSError`` or anyio's stream exceptions may reach a caller of
:class:`~pingthings.timeseries.transport.Channel`: every I/O boundary in the transport runs inside
:func:`translate_errors`, which turns those into :class:`TransportError` naming the endpoint.
"""

from __future__ import annotations

import ssl

import anyio

from pingthings.wire.grpc_status import GrpcStatus, status_name
from pingthings.wire.http2.frames import ConnectionProtocolError


class ChannelError(Exception):
    """Base class of every error the channel raises.

    Parameters
    ----------
    message
        What went wrong, in words.
    endpoint
        ``host:port`` of the server the channel talks to.
    """

    def __init__(self, message: str, endpoint: str) -> None:
        super().__init__(message, endpoint)
        self.message = message
        self.endpoint = endpoint

    def __str__(self) -> str:
        return f"{self.message} [{self.endpoint}]"


class GrpcStatusError(ChannelError):
    """The server (or the deadline) finished a call with a non-OK gRPC status.

    Parameters
    ----------
    status
        The gRPC status code, e.g. 16 for UNAUTHENTICATED.
    message
        The server's ``grpc-message`` (percent-decoded), or our own description.
    endpoint
        ``host:port`` of the server.
    method
        The RPC path (``/package.Service/Method``), when known.
    """

    def __init__(self, status: int, message: str, endpoint: str, method: str = "") -> None:
        Exception.__init__(self, status, message, endpoint)
        self.status = int(status)
        self.message = message
        self.endpoint = endpoint
        self.method = method

    def __reduce__(self) -> tuple[type, tuple[int, str, str, str]]:
        return (type(self), (self.status, self.message, self.endpoint, self.method))

    @property
    def status_name(self) -> str:
        """The status as ``"NAME (code)"``."""
        return status_name(self.status)

    def __str__(self) -> str:
        where = f"{self.method} on {self.endpoint}" if self.method else self.endpoint
        text = f"{self.status_name} from {where}"
        return f"{text}: {self.message}" if self.message else text


class TransportError(ChannelError):
    """The connection failed: refused, reset, closed, TLS failure, protocol violation or keepalive timeout.

    ``status`` is always UNAVAILABLE (14), as gRPC reports such failures, so callers that branch on a status
    code can treat both error kinds alike.
    """

    status = GrpcStatus.UNAVAILABLE

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        return (type(self), (self.message, self.endpoint))

    def fresh(self) -> TransportError:
        """A new instance with the same text and cause: a stored connection failure is raised by every
        call on that connection, and each raise should carry its own traceback."""
        copy = TransportError(self.message, self.endpoint)
        copy.__cause__ = self.__cause__
        return copy


class PeerUnresponsiveError(TransportError):
    """The server stopped answering (a keepalive ping went unanswered) while a call waited on it.

    Not retried by the client: a server that hangs would only be waited for again.
    """

    def fresh(self) -> TransportError:
        copy = PeerUnresponsiveError(self.message, self.endpoint)
        copy.__cause__ = self.__cause__
        return copy


_WORTH_SHOWING = (OSError, ssl.SSLError, ssl.CertificateError, ConnectionProtocolError)
"""Low-level errors whose text helps a user (errno, TLS reason, protocol violation)."""


def describe(exc: BaseException) -> str:
    """A short human description of a low-level exception, following its cause chain.

    Only errors that say something about the network, TLS or HTTP/2 are described; anyio's wrappers and what
    a library raised inside itself while noticing the problem (e.g. an ``IndexError`` from one of its
    buffers) say nothing to a user and are left out.
    """
    if isinstance(exc, anyio.EndOfStream):
        return "the connection was closed by the server"
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(parts) < 3:
        seen.add(id(current))
        wrapper_only = (
            type(current) is OSError and not current.strerror and isinstance(current.__cause__, OSError)
        )  # e.g. anyio's "All connection attempts failed", whose cause says what happened
        if wrapper_only:
            pass
        elif isinstance(current, _WORTH_SHOWING) or (not parts and not isinstance(current, _ANYIO_WRAPPERS)):
            parts.append(_one_line(current))
        elif parts:
            break
        current = current.__cause__ or (current.__context__ if not current.__suppress_context__ else None)
    if not parts:
        return "the connection broke"
    return "; caused by ".join(parts)


_ANYIO_WRAPPERS = (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.BusyResourceError)


def _one_line(exc: BaseException) -> str:
    """``connection refused``, ``Connection reset by peer`` (an OSError's reason), else ``Name: text``."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, OSError) and not isinstance(exc, ssl.SSLError) and exc.strerror:
        return str(exc.strerror)
    text = str(exc).strip()
    name = type(exc).__name__
    return f"{name}: {text}" if text else name


LOW_LEVEL_ERRORS: tuple[type[BaseException], ...] = (  # what translate_errors turns into TransportError
    OSError,
    ssl.SSLError,
    ssl.CertificateError,
    ConnectionProtocolError,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    anyio.EndOfStream,
    anyio.BusyResourceError,
)


class translate_errors:
    """Turn any socket, TLS, HTTP/2 or anyio stream exception raised inside into :class:`TransportError`.

    A small class rather than a generator-based context manager: it sits on the hot path of every read and
    write.

    Parameters
    ----------
    endpoint
        ``host:port``, named in the error.
    action
        What the channel was doing (``"connecting"``, ``"sending"``, ...), named in the error.
    """

    __slots__ = ("action", "endpoint")

    def __init__(self, endpoint: str, action: str) -> None:
        self.endpoint = endpoint
        self.action = action

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc is not None and isinstance(exc, LOW_LEVEL_ERRORS):
            raise to_transport_error(exc, self.endpoint, self.action) from exc


def to_transport_error(exc: BaseException, endpoint: str, action: str) -> TransportError:
    """The :class:`TransportError` describing a low-level exception ``exc`` raised while doing ``action``."""
    tls_errors = (ssl.SSLError, ssl.CertificateError)
    if isinstance(exc, tls_errors) or isinstance(exc.__cause__, tls_errors):
        what = f"TLS failure while {action}"
    elif isinstance(exc, ConnectionProtocolError):
        what = f"HTTP/2 protocol error while {action}"
    elif isinstance(exc, anyio.EndOfStream):
        return TransportError(f"the server closed the connection while {action}", endpoint)
    else:
        what = f"connection failure while {action}"
    return TransportError(f"{what}: {describe(exc)}", endpoint)
