"""Exceptions raised by :mod:`pingthings.timeseries`.

Every error the client raises derives from :class:`PingThingsError` (also exported as
``BTrDBError`` for code written against btrdb-python) and carries a ``code``:

* the v5 status code (``401`` … ``502``, see :class:`pingthings.wire.status.StatusCode`) when the
  server reported the error in a response's ``stat`` field;
* the gRPC status code (``1`` … ``16``) when the call itself failed at the gRPC level;
* ``None`` for errors the client detects on its own (bad credentials file, closed client, ...).

Errors that are also a builtin category inherit from that builtin as well, so ``except ValueError``
catches every bad-argument error and ``except ConnectionError`` every connection failure.

:func:`raise_for_status` maps every v5 status code to a class; :func:`error_from_grpc_status`
does the same for gRPC-level failures.
"""

from __future__ import annotations

import builtins
import re
from dataclasses import dataclass
from typing import NoReturn

from pingthings.wire.grpc_status import GrpcStatus
from pingthings.wire.status import StatusCode

__all__ = [
    "AlreadyExistsError",
    "AmbiguousStreamError",
    "BTrDBError",
    "BadSQLValue",
    "BadValue",
    "ClientClosedError",
    "ConnectionError",
    "CorruptReplyError",
    "CredentialsError",
    "CredentialsFileNotFound",
    "DeadlineExceededError",
    "InvalidArgumentError",
    "InvalidCollection",
    "InvalidOperation",
    "InvalidPointWidth",
    "InvalidTagKey",
    "InvalidTagValue",
    "InvalidTimeRange",
    "MetadataDecodeError",
    "NoSuchPointError",
    "NotImplementedByServerError",
    "ObjectNotFoundError",
    "OverloadedError",
    "PartialInsertError",
    "PermissionDeniedError",
    "PingThingsError",
    "ProfileNotFound",
    "PropertyVersionMismatchError",
    "RecycledUUIDError",
    "ServerError",
    "StreamExistsError",
    "StreamNotFoundError",
    "SubscriptionLagError",
    "SyncCallFromEventLoopError",
    "VersionNotAvailable",
    "WrongEndpointError",
    "error_for_status",
    "raise_for_status",
]


class PingThingsError(Exception):
    """Base class of every error raised by the client.

    Parameters
    ----------
    message
        What went wrong, in words a user can act on.
    code
        The v5 status code (or gRPC status code) behind the error; ``None`` when the client
        raised it on its own. Defaults to the class's ``code``.
    """

    code: int | None = None

    def __init__(self, message: str = "", code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self._reported_code = code is not None
        if code is not None:
            self.code = int(code)

    def __str__(self) -> str:
        # A code the server reported is shown as "[404] ..."; a class default is not (the client
        # raised the error itself, so no server code applies).
        if getattr(self, "_reported_code", False) and self.code is not None and self.code >= 400:
            return f"[{self.code}] {self.message}"
        return self.message


BTrDBError = PingThingsError
"""Alias kept for code written against btrdb-python."""


# ---------------------------------------------------------------------------------------- connection
class ConnectionError(PingThingsError, builtins.ConnectionError):
    """The server could not be reached, the connection broke, or TLS failed.

    Also a subclass of the builtin :class:`ConnectionError`.
    """

    def __init__(self, message: str = "", code: int | None = None) -> None:
        PingThingsError.__init__(self, message, code)

    def __str__(self) -> str:
        return PingThingsError.__str__(self)


class DeadlineExceededError(PingThingsError, builtins.TimeoutError):
    """A call did not finish before its deadline (gRPC DEADLINE_EXCEEDED, or v5 402 ContextError)."""

    def __init__(self, message: str = "", code: int | None = None) -> None:
        PingThingsError.__init__(self, message, code)

    def __str__(self) -> str:
        return PingThingsError.__str__(self)


class OverloadedError(PingThingsError):
    """Too many calls were already waiting for the client's concurrency limiter; this one was refused at
    once instead of queueing without bound (see ``max_waiting`` of
    :func:`pingthings.timeseries.connect`)."""


class ClientClosedError(PingThingsError, builtins.RuntimeError):
    """The client was closed; connect again to make more calls."""


class SyncCallFromEventLoopError(PingThingsError, builtins.RuntimeError):
    """A synchronous method was called on the client's own event loop thread.

    That call could never finish (it would wait for the loop it blocks). Async code must await the
    :class:`~pingthings.timeseries.async_client.AsyncClient` methods instead.
    """


# --------------------------------------------------------------------------------------- credentials
class CredentialsError(PingThingsError):
    """Connection settings could not be determined (credentials file, profile, endpoint, limits)."""


class CredentialsFileNotFound(CredentialsError, builtins.FileNotFoundError):
    """A profile was asked for but ``~/.predictivegrid/credentials.yaml`` does not exist."""

    def __init__(self, message: str = "", code: int | None = None) -> None:
        PingThingsError.__init__(self, message, code)

    def __str__(self) -> str:
        return PingThingsError.__str__(self)


class ProfileNotFound(CredentialsError, builtins.KeyError):
    """The credentials file has no profile of the asked name."""

    def __str__(self) -> str:
        return PingThingsError.__str__(self)


# ----------------------------------------------------------------------------------- lookups (404 …)
class StreamNotFoundError(PingThingsError, builtins.LookupError):
    """No live stream has the given UUID (404)."""

    code = StatusCode.NO_SUCH_STREAM


class NoSuchPointError(PingThingsError, builtins.LookupError):
    """``nearest`` found no point in the asked direction (401)."""

    code = StatusCode.NO_SUCH_POINT


class ObjectNotFoundError(PingThingsError, builtins.LookupError):
    """A device, unit or other platform object with that id does not exist (445)."""

    code = StatusCode.OBJECT_NOT_FOUND


# ------------------------------------------------------------------------------------ invalid operation
class InvalidOperation(PingThingsError):
    """The operation is not allowed in the current state."""


class StreamExistsError(InvalidOperation):
    """A stream with this UUID already exists (417; 406 on v4 servers)."""

    code = StatusCode.SAME_STREAM


class AmbiguousStreamError(InvalidOperation):
    """Another stream already has the same collection and tags (418; 412 ambiguous tags)."""

    code = StatusCode.AMBIGUOUS_STREAM


class AlreadyExistsError(InvalidOperation):
    """A device or unit with the same identifying fields already exists (442)."""

    code = StatusCode.ALREADY_EXISTS


class PermissionDeniedError(InvalidOperation, builtins.PermissionError):
    """The API key is missing or wrong, or does not allow the operation."""

    code = StatusCode.UNAUTHORIZED

    def __init__(self, message: str = "", code: int | None = None) -> None:
        PingThingsError.__init__(self, message, code)

    def __str__(self) -> str:
        return PingThingsError.__str__(self)


class PropertyVersionMismatchError(InvalidOperation):
    """The stream's metadata changed since it was read (423); refresh and retry."""

    code = StatusCode.ANNOTATION_VERSION_MISMATCH


# ------------------------------------------------------------------------------------- bad arguments
class InvalidArgumentError(PingThingsError, builtins.ValueError):
    """An argument was rejected, by the client or by the server."""

    code = StatusCode.INVALID_PARAMETER


class InvalidCollection(InvalidArgumentError):
    """The collection name is empty, too long or not valid UTF-8 (407)."""

    code = StatusCode.INVALID_COLLECTION


class InvalidTagKey(InvalidArgumentError):
    """A tag or annotation key is not allowed (408)."""

    code = StatusCode.INVALID_TAG_KEY


class InvalidTagValue(InvalidArgumentError):
    """A tag or annotation value is not allowed or too long (409, 422)."""

    code = StatusCode.INVALID_TAG_VALUE


class InvalidTimeRange(InvalidArgumentError):
    """A time lies outside the time axis, or start >= end (413)."""

    code = StatusCode.INVALID_TIME_RANGE


class InvalidPointWidth(InvalidArgumentError):
    """A point width, resolution or window width is out of range (415)."""

    code = StatusCode.INVALID_POINT_WIDTH


class BadValue(InvalidArgumentError):
    """A value is NaN, infinite or otherwise unusable (425)."""

    code = StatusCode.BAD_VALUE


class BadSQLValue(InvalidArgumentError):
    """The SQL statement or its parameters were rejected (441)."""

    code = StatusCode.BAD_SQL_VALUE


class VersionNotAvailable(InvalidArgumentError):
    """The asked data version does not exist or was pruned (450)."""

    code = StatusCode.VERSION_NOT_AVAILABLE


class RecycledUUIDError(InvalidArgumentError):
    """The UUID belonged to an obliterated stream and cannot be reused (429)."""

    code = StatusCode.REUSED_UUID


# ------------------------------------------------------------------------------------ everything else
class ServerError(PingThingsError):
    """Any other error the server reported.

    Parameters
    ----------
    code
        The v5 status code (or gRPC status code).
    msg
        The server's message.
    """

    def __init__(self, code: int, msg: str = "") -> None:
        super().__init__(msg, code)


class NotImplementedByServerError(ServerError, builtins.NotImplementedError):
    """The server does not implement this RPC or feature (v5 501, gRPC UNIMPLEMENTED)."""


class SubscriptionLagError(PingThingsError):
    """A live subscription fell too far behind the inserts and the server ended it.

    Raised by the subscription's iterator after it has delivered every batch received before
    the server gave up, so no point is lost silently. Subscribe again (and read the gap with
    ``raw_values``) to continue.
    """


class WrongEndpointError(ServerError):
    """The server is not the owner of the stream (v5 405): the call must go to another endpoint.

    A BTrDB cluster answers this from a node that does not hold the stream; the client retries through
    the proxy endpoints the server lists in Info when there are any.
    """


class CorruptReplyError(PingThingsError, builtins.ValueError):
    """The server sent point data the client cannot decode (the message names the stream, the
    piece of the reply and what is wrong with it)."""


class MetadataDecodeError(PingThingsError, builtins.ValueError):
    """The server sent stream metadata the client cannot read (names the stream and key)."""


@dataclass(frozen=True)
class WrittenRange:
    """Part of an insert the server acknowledged: points with ``start <= time <= end`` (both ends
    inclusive, the first and last time of the batch), stored at data ``version``."""

    start: int
    end: int
    points: int
    version: int


class PartialInsertError(PingThingsError):
    """An insert sent in several batches failed after some batches were written.

    Attributes
    ----------
    written
        The batches the server acknowledged, as :class:`WrittenRange` (time range, points, version),
        sorted by time. Those points are stored; the rest of the insert is not (re-insert it, or
        insert everything again with ``merge="equal"`` / ``"replace"``).
    error
        The error of the first batch that failed (also the ``__cause__``).
    """

    def __init__(self, msg: str, written: list[WrittenRange], error: PingThingsError) -> None:
        super().__init__(msg, error.code)
        self.written = written
        self.error = error


_CLASS_FOR_CODE: dict[int, type[PingThingsError]] = {
    StatusCode.NO_SUCH_POINT: NoSuchPointError,
    StatusCode.CONTEXT_ERROR: DeadlineExceededError,
    StatusCode.NO_SUCH_STREAM: StreamNotFoundError,
    StatusCode.STREAM_EXISTS_V4: StreamExistsError,
    StatusCode.INVALID_COLLECTION: InvalidCollection,
    StatusCode.INVALID_TAG_KEY: InvalidTagKey,
    StatusCode.INVALID_TAG_VALUE: InvalidTagValue,
    StatusCode.INVALID_LIMIT: InvalidArgumentError,
    StatusCode.AMBIGUOUS_TAGS: AmbiguousStreamError,
    StatusCode.INVALID_TIME_RANGE: InvalidTimeRange,
    StatusCode.INSERT_TOO_BIG: InvalidArgumentError,
    StatusCode.INVALID_POINT_WIDTH: InvalidPointWidth,
    StatusCode.SAME_STREAM: StreamExistsError,
    StatusCode.AMBIGUOUS_STREAM: AmbiguousStreamError,
    StatusCode.WRONG_ARGS: InvalidArgumentError,
    StatusCode.ANNOTATION_TOO_BIG: InvalidTagValue,
    StatusCode.ANNOTATION_VERSION_MISMATCH: PropertyVersionMismatchError,
    StatusCode.BAD_VALUE: BadValue,
    StatusCode.INVALID_VERSIONS: InvalidArgumentError,
    StatusCode.REUSED_UUID: RecycledUUIDError,
    StatusCode.CONCURRENT_MODIFICATION: PropertyVersionMismatchError,
    StatusCode.UNAUTHORIZED: PermissionDeniedError,
    StatusCode.INVALID_PARAMETER: InvalidArgumentError,
    StatusCode.METADATA_CONNECTION_ERROR: ConnectionError,
    StatusCode.BAD_SQL_VALUE: BadSQLValue,
    StatusCode.ALREADY_EXISTS: AlreadyExistsError,
    StatusCode.MISSING_PARAMETER: InvalidArgumentError,
    StatusCode.UNRECOGNIZED_PARAMETER: InvalidArgumentError,
    StatusCode.OBJECT_NOT_FOUND: ObjectNotFoundError,
    StatusCode.OBJECT_IN_USE: InvalidOperation,
    StatusCode.OPERATION_NOT_ALLOWED: PermissionDeniedError,
    StatusCode.TLS_ERROR: ConnectionError,
    StatusCode.VERSION_NOT_AVAILABLE: VersionNotAvailable,
    StatusCode.NOT_IMPLEMENTED: NotImplementedByServerError,
    StatusCode.WRONG_ENDPOINT: WrongEndpointError,
}
"""v5 codes with a specific class; every other non-zero code becomes :class:`ServerError`."""


def error_for_status(code: int, msg: str) -> PingThingsError:
    """Build (without raising) the exception for a non-zero v5 status code.

    Parameters
    ----------
    code
        The ``stat.code`` of a response; must not be 0.
    msg
        The ``stat.msg`` of the response.
    """
    cls = _CLASS_FOR_CODE.get(int(code))
    if cls is None:
        return ServerError(int(code), msg)
    if issubclass(cls, ServerError):
        return cls(int(code), msg)
    return cls(msg, int(code))


def raise_for_status(code: int, msg: str = "") -> None:
    """Raise the exception for a v5 status code; return quietly when ``code`` is 0.

    Parameters
    ----------
    code
        The ``stat.code`` of a response.
    msg
        The ``stat.msg`` of the response.
    """
    if code:
        raise error_for_status(code, msg)


_EMBEDDED_V5_CODE = re.compile(r"^\s*\[(\d{3})\]\s*(.*)$", re.DOTALL)


def error_from_grpc_status(status: int, message: str, endpoint: str, method: str = "") -> PingThingsError:
    """Build the exception for a call that ended with a non-OK gRPC status.

    Parameters
    ----------
    status
        The gRPC status code.
    message
        The server's ``grpc-message``.
    endpoint
        ``host:port`` of the server, named in connection errors.
    method
        The RPC path, named in the message when given.
    """
    where = f"{method} on {endpoint}" if method else endpoint
    embedded = _EMBEDDED_V5_CODE.match(message or "")
    if embedded and int(embedded.group(1)) in StatusCode._value2member_map_:
        # Some v5 servers and proxies send a v5 error as gRPC status with details "[404] msg".
        return error_for_status(int(embedded.group(1)), embedded.group(2))
    if status in (GrpcStatus.UNAUTHENTICATED, GrpcStatus.PERMISSION_DENIED):
        return PermissionDeniedError(
            f"{where} refused the call ({message or 'permission denied'}); check the API key "
            "(apikey argument, BTRDB_API_KEY or the profile's api_key)",
            status,
        )
    if status == GrpcStatus.UNAVAILABLE:
        return ConnectionError(f"cannot reach {where}: {message}", status)
    if status == GrpcStatus.DEADLINE_EXCEEDED:
        return DeadlineExceededError(f"{where} did not answer before the deadline: {message}", status)
    if status == GrpcStatus.UNIMPLEMENTED:
        return NotImplementedByServerError(
            status, f"the server at {endpoint} does not implement {method or 'this call'}: {message}"
        )
    return ServerError(status, f"{where} failed with gRPC status {status}: {message}")


def raise_for_grpc_status(status: int, message: str, endpoint: str, method: str = "") -> NoReturn:
    """Raise :func:`error_from_grpc_status`'s exception."""
    raise error_from_grpc_status(status, message, endpoint, method)
